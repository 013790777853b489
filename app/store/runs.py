"""A run's writes: create, start, finish and cancel (the hot writes, applied in batches),
and progress. Every state change is a conditional update, so racing writers cannot both win
and a replica that lost a task can never overwrite its new owner."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, select, update

from app.domain.models import StoredTask, TaskStatus, utcnow
from app.domain.outcome import Outcome
from app.store.cancels import Cancel, cancel_batch
from app.store.events import log_transitions
from app.store.tables import UNFINISHED_VALUES, task_from_row, tasks


@dataclass(frozen=True, slots=True)
class Start:
    task_id: str
    owner: str


@dataclass(frozen=True, slots=True)
class Finish:
    task_id: str
    owner: str
    attempt: int
    outcome: Outcome


# The hot writes, in the order a batch applies them.
HotWrite = StoredTask | Cancel | Start | Finish


def insert_batch(conn: Connection, new_tasks: Sequence[StoredTask]) -> list[None]:
    conn.execute(insert(tasks), [task.model_dump() for task in new_tasks])
    log_transitions(
        conn,
        [(task.task_id, None, task.status, task.owner, task.attempt) for task in new_tasks],
        [task.api_key_id for task in new_tasks],
    )
    return [None] * len(new_tasks)


def cancel_asked_pending(conn: Connection, where: Any, *, replica: str) -> list[StoredTask]:
    """pending -> cancelled for the tasks matching `where` whose cancel was asked: a cancel
    that reached a task between its holders is honoured by whoever holds it next."""
    statement = (
        update(tasks)
        .where(where, tasks.c.status == TaskStatus.PENDING.value, tasks.c.cancel_requested)
        .values(
            status=TaskStatus.CANCELLED.value,
            error="cancelled before it started",
            finished_at=utcnow(),
        )
        .returning(*tasks.c)
    )
    cancelled = [task_from_row(row) for row in conn.execute(statement).mappings()]
    log_transitions(
        conn,
        [
            (task.task_id, TaskStatus.PENDING, TaskStatus.CANCELLED, replica, task.attempt)
            for task in cancelled
        ],
        [task.cancel_key_id for task in cancelled],
    )
    return cancelled


def start_batch(conn: Connection, starts: Sequence[Start]) -> list[StoredTask | None]:
    """pending -> running for each owner's next attempt, or pending -> cancelled when its
    cancel was asked; None for a task that is not the owner's to start."""
    started: dict[str, StoredTask] = {}
    now = utcnow()
    for owner in {start.owner for start in starts}:
        ids = [start.task_id for start in starts if start.owner == owner]
        owned = and_(tasks.c.task_id.in_(ids), tasks.c.owner == owner)
        for task in cancel_asked_pending(conn, owned, replica=owner):
            started[task.task_id] = task
        statement = (
            update(tasks)
            .where(
                owned,
                tasks.c.status == TaskStatus.PENDING.value,
                tasks.c.cancel_requested.is_(False),
            )
            .values(
                status=TaskStatus.RUNNING.value,
                attempt=tasks.c.attempt + 1,
                progress=0,
                poll_failures=0,
                started_at=now,
            )
            .returning(*tasks.c)
        )
        for row in conn.execute(statement).mappings():
            started[row["task_id"]] = task_from_row(row)
    log_transitions(
        conn,
        [
            (task.task_id, TaskStatus.PENDING, TaskStatus.RUNNING, task.owner, task.attempt)
            for task in started.values()
            if task.status is TaskStatus.RUNNING
        ],
    )
    # A task asked twice in one batch starts once.
    return [started.pop(start.task_id, None) for start in starts]


_FINISH = (
    update(tasks)
    .where(
        tasks.c.task_id == bindparam("b_task_id"),
        tasks.c.status == TaskStatus.RUNNING.value,
        tasks.c.owner == bindparam("b_owner"),
        tasks.c.attempt == bindparam("b_attempt"),
    )
    .values(
        status=bindparam("b_status"),
        progress=bindparam("b_progress"),
        result=bindparam("b_result", type_=tasks.c.result.type),
        error=bindparam("b_error"),
        poll_failures=bindparam("b_poll_failures"),
        finished_at=bindparam("b_finished_at", type_=tasks.c.finished_at.type),
    )
)


def finish_batch(conn: Connection, finishes: Sequence[Finish]) -> list[bool]:
    """Reads the rows under lock (FOR UPDATE; on SQLite the writer's BEGIN IMMEDIATE), keeps
    the finishes whose run still holds its task (fencing on owner and attempt), and writes
    those in one executemany."""
    query = (
        select(
            tasks.c.task_id, tasks.c.status, tasks.c.owner, tasks.c.attempt, tasks.c.cancel_key_id
        )
        .where(tasks.c.task_id.in_([finish.task_id for finish in finishes]))
        .order_by(tasks.c.task_id)  # every multi-row writer locks in task_id order
        .with_for_update()
    )
    holders = {row.task_id: row for row in conn.execute(query)}
    winners: dict[str, Finish] = {}
    for finish in finishes:
        row = holders.get(finish.task_id)
        if (
            row is not None
            and finish.task_id not in winners
            and row.status == TaskStatus.RUNNING.value
            and (row.owner, row.attempt) == (finish.owner, finish.attempt)
        ):
            winners[finish.task_id] = finish
    if winners:
        now = utcnow()
        conn.execute(
            _FINISH,
            [
                {
                    "b_task_id": finish.task_id,
                    "b_owner": finish.owner,
                    "b_attempt": finish.attempt,
                    "b_status": finish.outcome.status.value,
                    "b_progress": finish.outcome.progress,
                    "b_result": finish.outcome.result,
                    "b_error": finish.outcome.error,
                    "b_poll_failures": finish.outcome.poll_failures,
                    "b_finished_at": now,
                }
                for finish in winners.values()
            ],
        )
        log_transitions(
            conn,
            [
                (f.task_id, TaskStatus.RUNNING, f.outcome.status, f.owner, f.attempt)
                for f in winners.values()
            ],
            [_cancel_key(holders[f.task_id], f) for f in winners.values()],
        )
    return [winners.get(finish.task_id) is finish for finish in finishes]


def _cancel_key(row: Any, finish: Finish) -> str | None:
    """The key that asked a cancel, on the transition that honoured it."""
    return row.cancel_key_id if finish.outcome.status is TaskStatus.CANCELLED else None


_APPLIERS: tuple[tuple[type, Callable[[Connection, Any], list[Any]]], ...] = (
    (StoredTask, insert_batch),
    (Cancel, cancel_batch),
    (Start, start_batch),
    (Finish, finish_batch),
)


def write_batch(conn: Connection, writes: Sequence[HotWrite]) -> list[Any]:
    """Creates, cancels, run starts and run finishes that arrived together, in one
    transaction (a task starts only after its create committed, so never in the batch that
    makes it; a start after a cancel of the same batch finds it cancelled)."""
    results: dict[int, Any] = {}
    for kind, apply in _APPLIERS:
        indexes = [i for i, write in enumerate(writes) if isinstance(write, kind)]
        if indexes:
            outcomes = apply(conn, [writes[i] for i in indexes])
            results.update(zip(indexes, outcomes, strict=True))
    return [results[i] for i in range(len(writes))]


def request_cancel(conn: Connection, *, task_id: str, api_key_id: str | None = None) -> bool:
    """Records a cancel (and the key asking) so whoever runs the task honours it; False if
    already finished."""
    statement = (
        update(tasks)
        .where(tasks.c.task_id == task_id, tasks.c.status.in_(UNFINISHED_VALUES))
        .values(cancel_requested=True, cancel_key_id=api_key_id)
    )
    return bool(conn.execute(statement).rowcount == 1)


_SAVE_PROGRESS = (
    update(tasks)
    .where(
        tasks.c.task_id == bindparam("b_task_id"),
        tasks.c.owner == bindparam("b_owner"),
        tasks.c.status == TaskStatus.RUNNING.value,
    )
    .values(progress=bindparam("b_progress"), poll_failures=bindparam("b_poll_failures"))
)


def save_progress(conn: Connection, *, owner: str, rows: Sequence[tuple[str, int, int]]) -> None:
    """Persists (task_id, progress, poll_failures) of the owner's running tasks."""
    params = [
        {"b_task_id": task_id, "b_owner": owner, "b_progress": progress, "b_poll_failures": fails}
        for task_id, progress, fails in sorted(rows)
    ]
    if params:
        conn.execute(_SAVE_PROGRESS, params)
