"""Retention: finished tasks past their algorithm's retention_s are deleted with their
events, attempts and idempotency keys, a bounded batch per transaction, found through
ix_tasks_finished."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, or_, select

from app.domain.models import FINISHED
from app.store.tables import attempts, idempotency_keys, task_events, tasks

FINISHED_VALUES = sorted(status.value for status in FINISHED)


def _expired(cutoffs: Mapping[str, datetime], default_cutoff: datetime) -> Any:
    """Finished before its algorithm's cutoff (the default one for any other algorithm)."""
    by_algorithm = [
        and_(tasks.c.algorithm == name, tasks.c.finished_at < cutoff)
        for name, cutoff in sorted(cutoffs.items())
    ]
    others = and_(tasks.c.algorithm.not_in(sorted(cutoffs)), tasks.c.finished_at < default_cutoff)
    return or_(*by_algorithm, others)


def delete_tasks(conn: Connection, task_ids: Sequence[str]) -> int:
    """Deletes those of these tasks that are finished, with their events, attempts and
    idempotency keys (a key whose task is gone is free again); returns how many. The rows
    are locked first, so a task a re-run moves back to pending meanwhile keeps its log."""
    if not task_ids:
        return 0
    locked = (
        select(tasks.c.task_id)
        .where(tasks.c.task_id.in_(task_ids), tasks.c.status.in_(FINISHED_VALUES))
        .with_for_update()
    )
    finished = list(conn.execute(locked).scalars())
    if not finished:
        return 0
    conn.execute(delete(idempotency_keys).where(idempotency_keys.c.task_id.in_(finished)))
    conn.execute(delete(task_events).where(task_events.c.task_id.in_(finished)))
    conn.execute(delete(attempts).where(attempts.c.task_id.in_(finished)))
    return int(conn.execute(delete(tasks).where(tasks.c.task_id.in_(finished))).rowcount)


def delete_expired(
    conn: Connection, *, cutoffs: Mapping[str, datetime], default_cutoff: datetime, limit: int
) -> int:
    """Deletes up to `limit` expired finished tasks (oldest first); returns how many."""
    latest = max([default_cutoff, *cutoffs.values()])
    query = (
        select(tasks.c.task_id)
        # the index range first: only tasks finished before the latest cutoff
        .where(
            tasks.c.finished_at < latest,
            tasks.c.status.in_(FINISHED_VALUES),
            _expired(cutoffs, default_cutoff),
        )
        .order_by(tasks.c.finished_at)
        .limit(limit)
    )
    task_ids = list(conn.execute(query).scalars())
    return delete_tasks(conn, task_ids)
