"""Re-runs and bulk actions: a finished task back in the queue for its next attempt, and
the cancels or re-runs of every task a filter matches, one page of ids per transaction (the
work of a statement and the locks of a transaction stay bounded, whatever the filter)."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, select, update

from app.domain.models import RERUNNABLE, BulkFilter, StoredTask, TaskStatus
from app.store.cancels import Cancel, CancelAnswer, cancel_batch
from app.store.events import log_transitions
from app.store.tables import UNFINISHED_VALUES, task_from_row, tasks

PAGE_SIZE = 500
RERUNNABLE_VALUES = sorted(status.value for status in RERUNNABLE)


@dataclass(frozen=True, slots=True)
class Selection:
    """The tasks a bulk action takes (a client key's own only: `scope`), and who acts."""

    where: BulkFilter
    scope: str | None  # a client key's id; None: every key's tasks
    replica: str
    api_key_id: str | None  # the key acting, for the transition log

    def conditions(self) -> list[Any]:
        where, conditions = self.where, []
        if where.algorithm is not None:
            conditions.append(tasks.c.algorithm == where.algorithm)
        if where.status is not None:
            conditions.append(tasks.c.status == where.status.value)
        if where.created_before is not None:
            conditions.append(tasks.c.created_at < where.created_before)
        if where.schedule is not None:
            conditions.append(tasks.c.schedule == where.schedule)
        if self.scope is not None:
            conditions.append(tasks.c.api_key_id == self.scope)
        return conditions


def _page(conn: Connection, conditions: list[Any], after: str) -> list[str]:
    query = (
        select(tasks.c.task_id)
        .where(*conditions, tasks.c.task_id > after)
        .order_by(tasks.c.task_id)
        .limit(PAGE_SIZE)
    )
    return list(conn.execute(query).scalars())


def rerun(
    conn: Connection, task_ids: Sequence[str], *, replica: str, api_key_id: str | None
) -> list[StoredTask]:
    """failed, cancelled or timed_out -> pending, due at once, for the next attempt (its
    max_attempts raised to allow it); the earlier attempts stay. Returns the tasks moved."""
    query = (
        select(tasks.c.task_id, tasks.c.status)
        .where(tasks.c.task_id.in_(task_ids), tasks.c.status.in_(RERUNNABLE_VALUES))
        .order_by(tasks.c.task_id)  # every multi-row writer locks in task_id order
        .with_for_update()
    )
    before = {task_id: TaskStatus(status) for task_id, status in conn.execute(query).all()}
    if not before:
        return []
    statement = (
        update(tasks)
        .where(tasks.c.task_id.in_(sorted(before)), tasks.c.status.in_(RERUNNABLE_VALUES))
        .values(
            status=TaskStatus.PENDING.value,
            owner=None,
            progress=0,
            result=None,
            error=None,
            poll_failures=0,
            started_at=None,
            finished_at=None,
            next_attempt_at=None,
            cancel_requested=False,
            cancel_key_id=None,
            max_attempts=case(
                (tasks.c.max_attempts > tasks.c.attempt, tasks.c.max_attempts),
                else_=tasks.c.attempt + 1,
            ),
        )
        .returning(*tasks.c)
    )
    moved = [task_from_row(row) for row in conn.execute(statement).mappings()]
    log_transitions(
        conn,
        [(t.task_id, before[t.task_id], TaskStatus.PENDING, replica, t.attempt) for t in moved],
        [api_key_id] * len(moved),
    )
    return moved


def cancel_page(
    conn: Connection, selection: Selection, *, after: str
) -> tuple[list[str], list[CancelAnswer | None]]:
    """The next page of unfinished tasks selected, whose cancel nobody asked yet, cancelled
    as a single cancel does (pending ones end now; running ones get the cancel recorded)."""
    unasked = [tasks.c.status.in_(UNFINISHED_VALUES), tasks.c.cancel_requested.is_(False)]
    ids = _page(conn, [*selection.conditions(), *unasked], after)
    if not ids:
        return [], []
    asks = [Cancel(task_id, selection.replica, selection.api_key_id) for task_id in ids]
    return ids, cancel_batch(conn, asks)


def rerun_page(
    conn: Connection, selection: Selection, *, after: str
) -> tuple[list[str], list[StoredTask]]:
    """The next page of re-runnable tasks selected, back in the queue."""
    rerunnable = tasks.c.status.in_(RERUNNABLE_VALUES)
    ids = _page(conn, [*selection.conditions(), rerunnable], after)
    if not ids:
        return [], []
    return ids, rerun(conn, ids, replica=selection.replica, api_key_id=selection.api_key_id)
