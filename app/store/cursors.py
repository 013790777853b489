"""The list cursor: an opaque token naming the last task of a page (created_at, task_id).

Decoding is strict: only the exact form this service gives out is accepted, so a forged
cursor is bad input (InvalidCursor), never a database fault.
"""

import base64
import binascii
from datetime import datetime, timedelta

from app.domain.errors import InvalidCursor
from app.domain.models import StoredTask, is_task_id

CURSOR_MAX_CHARS = 200
# a cursor names a task's creation time: anything outside these years is forged, and near
# the calendar's ends a time-zone conversion overflows
CURSOR_YEARS = range(2000, 9000)


def _cursor_of(created_at: datetime, task_id: str) -> str:
    raw = f"{created_at.isoformat()}|{task_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def encode_cursor(task: StoredTask) -> str:
    return _cursor_of(task.created_at, task.task_id)


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(created_at, task_id) of a cursor this service gave out, in the exact form it gives
    them out; InvalidCursor (bad input, never a store fault) for anything else."""
    if len(cursor) > CURSOR_MAX_CHARS or not cursor.isascii():
        raise InvalidCursor("not one this service gave out")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.b64decode(padded, altchars=b"-_", validate=True).decode("ascii")
        created, task_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(created)
    except (ValueError, binascii.Error) as exc:
        raise InvalidCursor("not one this service gave out") from exc
    if (
        created_at.utcoffset() != timedelta(0)
        or created_at.year not in CURSOR_YEARS
        or not is_task_id(task_id)
        or _cursor_of(created_at, task_id) != cursor
    ):
        raise InvalidCursor("not one this service gave out")
    return created_at, task_id
