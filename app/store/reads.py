"""Reads: tasks by id (many lookups in one query), pages of the list, counts."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, and_, func, or_, select

from app.domain.models import StoredTask, TaskStatus
from app.store.cursors import encode_cursor
from app.store.tables import task_from_row, tasks


def tasks_by_id(conn: Connection, task_ids: Sequence[str]) -> list[StoredTask | None]:
    """The tasks named, in the order asked (None for an unknown id)."""
    query = select(tasks).where(tasks.c.task_id.in_(set(task_ids)))
    found = {row["task_id"]: task_from_row(row) for row in conn.execute(query).mappings()}
    return [found.get(task_id) for task_id in task_ids]


def page_of_tasks(
    conn: Connection,
    *,
    status: TaskStatus | None,
    algorithm: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
    api_key_id: str | None = None,
    schedule: str | None = None,
) -> tuple[list[StoredTask], str | None]:
    """A page of tasks, newest first, after the (created_at, task_id) of a decoded cursor,
    and the cursor of the next page (None at the end)."""
    query = select(tasks)
    if status is not None:
        query = query.where(tasks.c.status == status.value)
    if algorithm is not None:
        query = query.where(tasks.c.algorithm == algorithm)
    if api_key_id is not None:
        query = query.where(tasks.c.api_key_id == api_key_id)
    if schedule is not None:
        query = query.where(tasks.c.schedule == schedule)
    if after is not None:
        created_at, task_id = after
        query = query.where(
            or_(
                tasks.c.created_at < created_at,
                and_(tasks.c.created_at == created_at, tasks.c.task_id < task_id),
            )
        )
    query = query.order_by(tasks.c.created_at.desc(), tasks.c.task_id.desc()).limit(limit + 1)
    rows = conn.execute(query).mappings().all()
    page = [task_from_row(row) for row in rows[:limit]]
    next_cursor = encode_cursor(page[-1]) if len(rows) > limit else None
    return page, next_cursor


def count_by_status(conn: Connection, api_key_id: str | None = None) -> dict[TaskStatus, int]:
    query = select(tasks.c.status, func.count()).group_by(tasks.c.status)
    if api_key_id is not None:
        query = query.where(tasks.c.api_key_id == api_key_id)
    counts = dict.fromkeys(TaskStatus, 0)
    for status, count in conn.execute(query).all():
        counts[TaskStatus(status)] = int(count)
    return counts
