"""A cancel, applied with the other hot writes (one transaction for all that arrive
together): a pending task is cancelled at once; a running one gets its cancel recorded for
whoever runs it, which then stops the run."""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from app.domain.models import StoredTask, TaskStatus, utcnow
from app.store.events import log_transitions
from app.store.tables import UNFINISHED_VALUES, task_from_row, tasks


@dataclass(frozen=True, slots=True)
class Cancel:
    task_id: str
    replica: str
    api_key_id: str | None = None  # the key asking, for the transition log


@dataclass(frozen=True, slots=True)
class CancelAnswer:
    """What a cancel found (`before`: finished means nothing was changed) and the task after."""

    before: TaskStatus
    task: StoredTask


def cancel_batch(conn: Connection, cancels: Sequence[Cancel]) -> list[CancelAnswer | None]:
    """Reads the rows under lock, cancels the pending ones and records the cancel of the
    running ones; None for an unknown task. A task asked twice is cancelled once (the
    second ask finds it cancelled)."""
    query = (
        select(tasks)
        .where(tasks.c.task_id.in_({cancel.task_id for cancel in cancels}))
        .order_by(tasks.c.task_id)  # every multi-row writer locks in task_id order
        .with_for_update()
    )
    found = {row["task_id"]: task_from_row(row) for row in conn.execute(query).mappings()}
    first_ask = {cancel.task_id: cancel for cancel in reversed(cancels)}
    now_cancelled = _cancel_pending(conn, found, first_ask)
    running = [task for task in found.values() if task.status is TaskStatus.RUNNING]
    for api_key_id in {first_ask[task.task_id].api_key_id for task in running}:
        asked = [t.task_id for t in running if first_ask[t.task_id].api_key_id == api_key_id]
        conn.execute(
            update(tasks)
            .where(tasks.c.task_id.in_(asked), tasks.c.status.in_(UNFINISHED_VALUES))
            .values(cancel_requested=True, cancel_key_id=api_key_id)
        )
    after = {task.task_id: task.model_copy(update={"cancel_requested": True}) for task in running}
    after.update(now_cancelled)
    answers: list[CancelAnswer | None] = []
    for cancel in cancels:
        task = found.get(cancel.task_id)
        if task is None:
            answers.append(None)
            continue
        current = after.get(cancel.task_id, task)
        answers.append(CancelAnswer(task.status, current))
        found[cancel.task_id] = current  # what a second ask of the same task finds
    return answers


def _cancel_pending(
    conn: Connection, found: dict[str, StoredTask], first_ask: dict[str, Cancel]
) -> dict[str, StoredTask]:
    pending = [task_id for task_id, task in found.items() if task.status is TaskStatus.PENDING]
    if not pending:
        return {}
    statement = (
        update(tasks)
        .where(tasks.c.task_id.in_(pending), tasks.c.status == TaskStatus.PENDING.value)
        .values(
            status=TaskStatus.CANCELLED.value,
            cancel_requested=True,
            error="cancelled before it started",
            finished_at=utcnow(),
        )
        .returning(*tasks.c)
    )
    cancelled = {row["task_id"]: task_from_row(row) for row in conn.execute(statement).mappings()}
    asks = [first_ask[task_id] for task_id in cancelled]
    log_transitions(
        conn,
        [
            (task_id, TaskStatus.PENDING, TaskStatus.CANCELLED, ask.replica, task.attempt)
            for (task_id, task), ask in zip(cancelled.items(), asks, strict=True)
        ],
        [ask.api_key_id for ask in asks],
    )
    return cancelled
