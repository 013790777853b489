"""The dashboard's reads. Each is an index range (see the tasks table's indexes), so a
refresh costs the same at 100 or 100,000 tasks: pages are bounded, counts read one index,
the chart reads only the last hour's finishes."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, func, literal_column, or_, select

from app.domain.models import StoredTask, TaskStatus
from app.store.cursors import encode_cursor
from app.store.tables import replicas, task_from_row, tasks

# Highest code point: `id LIKE 'ab%'` as an index range, `'ab' <= id < 'ab\uffff'`.
PREFIX_END = "\uffff"


@dataclass(frozen=True, slots=True)
class TaskFilter:
    status: TaskStatus | None = None
    algorithm: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    id_prefix: str | None = None


def _filtered(query: object, where: TaskFilter) -> object:
    conditions = []
    if where.status is not None:
        conditions.append(tasks.c.status == where.status.value)
    if where.algorithm is not None:
        conditions.append(tasks.c.algorithm == where.algorithm)
    if where.created_after is not None:
        conditions.append(tasks.c.created_at >= where.created_after)
    if where.created_before is not None:
        conditions.append(tasks.c.created_at < where.created_before)
    if where.id_prefix:
        conditions.append(tasks.c.task_id >= where.id_prefix)
        conditions.append(tasks.c.task_id < where.id_prefix + PREFIX_END)
    return query.where(*conditions) if conditions else query  # type: ignore[attr-defined]


def page(
    conn: Connection, *, where: TaskFilter, limit: int, after: tuple[datetime, str] | None
) -> tuple[list[StoredTask], str | None]:
    """A page of matching tasks, newest first, and the next page's cursor (None at the end)."""
    query = _filtered(select(tasks), where)
    if after is not None:
        created_at, task_id = after
        query = query.where(  # type: ignore[attr-defined]
            or_(
                tasks.c.created_at < created_at,
                and_(tasks.c.created_at == created_at, tasks.c.task_id < task_id),
            )
        )
    query = query.order_by(  # type: ignore[attr-defined]
        tasks.c.created_at.desc(), tasks.c.task_id.desc()
    ).limit(limit + 1)
    rows = conn.execute(query).mappings().all()
    found = [task_from_row(row) for row in rows[:limit]]
    return found, encode_cursor(found[-1]) if len(rows) > limit else None


def counts(conn: Connection) -> list[tuple[str, TaskStatus, int]]:
    """(algorithm, status, tasks) for every pair that has any: one index, no table rows."""
    query = select(tasks.c.algorithm, tasks.c.status, func.count()).group_by(
        tasks.c.algorithm, tasks.c.status
    )
    return [(alg, TaskStatus(status), int(n)) for alg, status, n in conn.execute(query).all()]


def _minute_of(conn: Connection) -> object:
    if conn.dialect.name == "postgresql":
        return func.date_trunc("minute", tasks.c.finished_at)
    return func.strftime("%Y-%m-%dT%H:%M", tasks.c.finished_at)


def finished_per_minute(conn: Connection, *, since: datetime) -> list[tuple[str, TaskStatus, int]]:
    """("YYYY-MM-DDTHH:MM" UTC, status, tasks) of the tasks finished since `since`."""
    minute = _minute_of(conn)
    query = (
        select(minute.label("minute"), tasks.c.status, func.count())  # type: ignore[attr-defined]
        .where(tasks.c.finished_at >= since)
        .group_by(literal_column("minute"), tasks.c.status)
    )
    found = []
    for at, status, count in conn.execute(query).all():
        label = at.strftime("%Y-%m-%dT%H:%M") if isinstance(at, datetime) else str(at)
        found.append((label, TaskStatus(status), int(count)))
    return found


def running_by_owner(conn: Connection) -> dict[str, int]:
    """replica -> its running tasks, as the database says."""
    query = (
        select(tasks.c.owner, func.count())
        .where(tasks.c.status == TaskStatus.RUNNING.value)
        .group_by(tasks.c.owner)
    )
    return {str(owner): int(count) for owner, count in conn.execute(query).all()}


def leases(conn: Connection) -> dict[str, datetime]:
    """replica -> the end of its lease."""
    rows = conn.execute(select(replicas.c.replica_id, replicas.c.lease_expires_at)).all()
    return {replica: expires for replica, expires in rows}


def lease_of(conn: Connection, replica_id: str) -> datetime | None:
    """The end of the replica's lease (None without a lease row)."""
    query = select(replicas.c.lease_expires_at).where(replicas.c.replica_id == replica_id)
    found: datetime | None = conn.execute(query).scalar_one_or_none()
    return found
