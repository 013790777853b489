"""The dashboard's Jinja2 environment: autoescaped templates shipped in the package."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates

from app.domain.models import TaskStatus

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def _when(value: datetime | str | None) -> str:
    """A time in UTC to the second (an ISO text too, as the algorithms' JSON holds it)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _unix(value: datetime | None) -> str:
    return "" if value is None else f"{value.timestamp():.0f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _short(task_id: str) -> str:
    return task_id[:8]


def _pretty(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, sort_keys=True, default=str)


templates.env.filters.update(when=_when, unix=_unix, seconds=_seconds, short=_short, pretty=_pretty)
templates.env.globals.update(statuses=list(TaskStatus))
