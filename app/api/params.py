"""Path and header values parsed strictly at the edge, before anything else sees them."""

import re
from typing import Annotated

from fastapi import Header, Path

from app.core.digits import ascii_int
from app.domain.errors import InvalidRequest, NotFound
from app.domain.models import is_task_id

PRINTABLE_ASCII = r"[\x20-\x7e]+"
IDEMPOTENCY_KEY_PATTERN = f"^{PRINTABLE_ASCII}$"
IDEMPOTENCY_KEY_MAX = 255
MAX_EVENT_ID_DIGITS = 18  # event ids are attempt * 1000 + ...: far below 10**18


def parse_event_id(value: str | None) -> int:
    """`Last-Event-ID` as a number; absent or empty (no event seen yet) is 0."""
    if not value:
        return 0
    try:
        return ascii_int(value, max_digits=MAX_EVENT_ID_DIGITS)
    except ValueError:
        raise InvalidRequest(
            f"Last-Event-ID must be 1 to {MAX_EVENT_ID_DIGITS} ASCII digits"
        ) from None


def is_idempotency_key(value: str) -> bool:
    """What the Idempotency-Key header below accepts."""
    return len(value) <= IDEMPOTENCY_KEY_MAX and re.fullmatch(PRINTABLE_ASCII, value) is not None


async def task_id_in_path(
    task_id: Annotated[str, Path(description="the task's id, a UUID")],
) -> str:
    """The path's task id; anything but a UUID names no task (404, and no store lookup)."""
    if not is_task_id(task_id):
        raise NotFound(f"no task {task_id[:64]}")  # as for a well-formed unknown id
    return task_id


async def last_event_id(
    last_event_id: Annotated[
        str | None,
        Header(description="resume after this event id (1 to 18 ASCII digits)"),
    ] = None,
) -> int:
    return parse_event_id(last_event_id)


async def idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(
            description="makes the create safe to repeat: the same key with the same body "
            "within TASKBEAT_IDEMPOTENCY_TTL_S answers the first task (200, "
            "Idempotent-Replayed: true); 1 to 255 printable ASCII characters",
            min_length=1,
            max_length=IDEMPOTENCY_KEY_MAX,
            pattern=IDEMPOTENCY_KEY_PATTERN,
        ),
    ] = None,
) -> str | None:
    return idempotency_key
