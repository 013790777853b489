"""The transition log: every status change is appended to task_events in the transaction
that made it, with the replica, the attempt and the API key that caused it (if any)."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.engine import RowMapping

from app.domain.models import TaskEvent, TaskStatus, utcnow
from app.store.tables import task_events

# (task_id, from_status, to_status, replica, attempt); from_status None for a create
Transition = tuple[str, TaskStatus | None, TaskStatus, str | None, int]


def log_transitions(
    conn: Connection,
    transitions: Sequence[Transition],
    api_key_ids: Sequence[str | None] | None = None,
) -> None:
    """Appends the transitions in one executemany; `api_key_ids`, one per transition, name
    the keys that caused them."""
    if not transitions:
        return
    at = utcnow()
    keys = [None] * len(transitions) if api_key_ids is None else api_key_ids
    conn.execute(
        insert(task_events),
        [
            {
                "task_id": task_id,
                "from_status": None if from_status is None else from_status.value,
                "to_status": to_status.value,
                "replica": replica,
                "attempt": attempt,
                "at": at,
                "api_key_id": api_key_id,
            }
            for (task_id, from_status, to_status, replica, attempt), api_key_id in zip(
                transitions, keys, strict=True
            )
        ],
    )


def apply_transition(
    conn: Connection,
    statement: Any,
    *,
    task_id: str,
    from_status: TaskStatus,
    to_status: TaskStatus,
    replica: str | None,
    api_key_id: str | None = None,
) -> RowMapping | None:
    """Runs a conditional UPDATE that RETURNs at least `attempt`; when it matched, logs the
    transition. None when the row was not as the update required."""
    row = conn.execute(statement).mappings().first()
    if row is not None:
        transition = (task_id, from_status, to_status, replica, row["attempt"])
        log_transitions(conn, [transition], [api_key_id])
    return row


def history(conn: Connection, task_id: str) -> list[TaskEvent]:
    """The task's transitions, oldest first."""
    query = select(task_events).where(task_events.c.task_id == task_id).order_by(task_events.c.id)
    return [TaskEvent.model_validate(dict(row)) for row in conn.execute(query).mappings()]
