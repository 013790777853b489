"""The bulk page's filter, read from a query or a posted form into the `BulkFilter` that
`POST /v1/bulk/*` takes (validated by the same model: a bad value is a 422 naming it)."""

from typing import get_args

from pydantic import ValidationError

from app.domain.errors import InvalidRequest
from app.domain.models import BulkFilter
from app.store.bulk import BulkAction

ACTIONS: tuple[str, ...] = get_args(BulkAction)
FILTER_FIELDS = ("algorithm", "status", "created_before")


def filter_of(values: dict[str, str]) -> BulkFilter:
    """The filter of the fields given (an empty field: any)."""
    given = {name: values[name] for name in FILTER_FIELDS if values.get(name)}
    try:
        return BulkFilter.model_validate(given)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "filter"
        raise InvalidRequest(f"{field}: {error['msg']}") from None


def action_of(text: str) -> BulkAction | None:
    if not text:
        return None
    if text not in ACTIONS:
        raise InvalidRequest(f"action: one of {', '.join(ACTIONS)}, not {text[:20]!r}")
    return "cancel" if text == "cancel" else "retry"
