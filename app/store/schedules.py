"""Schedules, and the tasks their ticks fire.

Exactly one task per tick over every replica, with no leader: any replica may fire a
tick, each firing inserts the tick's task with the key (schedule, scheduled_for) under a
unique index, ON CONFLICT DO NOTHING (PostgreSQL and SQLite alike), so every try after
the first inserts nothing and logs nothing. `last_tick_at` only moves forward, so a
replica that comes late learns that the tick was dealt with.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.domain.errors import Conflict
from app.domain.models import StoredTask, TaskStatus, utcnow
from app.domain.schedule import RECENT_TASKS, ScheduledTask, StoredSchedule
from app.store.events import log_transitions
from app.store.tables import UNFINISHED_VALUES, schedules, task_from_row, tasks


@dataclass(frozen=True, slots=True)
class Firing:
    """The ticks one schedule fires now (oldest first), each as a task ready to insert."""

    schedule: str
    tick_tasks: Sequence[StoredTask]
    latest_tick: datetime
    skip_when_unfinished: bool  # overlap "skip": none fires while an earlier task runs


def _dialect_insert(conn: Connection) -> Any:
    return postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert


def _schedule(row: Any) -> StoredSchedule:
    return StoredSchedule.model_validate(dict(row))


def all_schedules(conn: Connection) -> list[StoredSchedule]:
    query = select(schedules).order_by(schedules.c.name)
    return [_schedule(row) for row in conn.execute(query).mappings()]


def one(conn: Connection, name: str) -> StoredSchedule | None:
    row = conn.execute(select(schedules).where(schedules.c.name == name)).mappings().first()
    return None if row is None else _schedule(row)


def create(conn: Connection, *, name: str, fields: dict[str, Any]) -> StoredSchedule:
    """A new schedule; Conflict when the name is taken."""
    now = utcnow()
    row = {"name": name, **fields, "since_at": now, "created_at": now, "updated_at": now}
    statement = _dialect_insert(conn)(schedules).values(**row).on_conflict_do_nothing()
    if conn.execute(statement.returning(schedules.c.name)).first() is None:
        raise Conflict(f"a schedule named {name!r} exists")
    created = one(conn, name)
    assert created is not None
    return created


def change(
    conn: Connection, *, name: str, fields: dict[str, Any], restart: bool
) -> StoredSchedule | None:
    """Writes `fields` over the schedule (None when there is none); `restart` moves its
    `since_at` to now, so that no tick before the change is ever caught up."""
    values: dict[str, Any] = {**fields, "updated_at": utcnow()}
    if restart:
        values["since_at"] = values["updated_at"]
    conn.execute(update(schedules).where(schedules.c.name == name).values(**values))
    return one(conn, name)


def remove(conn: Connection, name: str) -> bool:
    return bool(conn.execute(delete(schedules).where(schedules.c.name == name)).rowcount)


def apply_declared(conn: Connection, declared: dict[str, dict[str, Any]]) -> None:
    """The configuration file's schedules: each one missing is created, each whose declared
    fields differ from those last applied gets them laid over it (so a file edit wins at
    the next start), and the rest keep the changes made through the API."""
    for name, fields in sorted(declared.items()):
        current = one(conn, name)
        if current is None:
            now = utcnow()
            row = {**fields, "declared": fields, "since_at": now}
            statement = _dialect_insert(conn)(schedules).values(
                name=name, created_at=now, updated_at=now, **row
            )
            conn.execute(statement.on_conflict_do_nothing())
        elif current.declared != fields:
            restart = (current.cron, current.timezone) != (fields["cron"], fields["timezone"])
            change(conn, name=name, fields={**fields, "declared": fields}, restart=restart)


def recent_tasks(conn: Connection, name: str, limit: int = RECENT_TASKS) -> list[ScheduledTask]:
    query = (
        select(tasks.c.task_id, tasks.c.status, tasks.c.scheduled_for)
        .add_columns(tasks.c.created_at, tasks.c.finished_at)
        .where(tasks.c.schedule == name)
        .order_by(tasks.c.created_at.desc(), tasks.c.task_id.desc())
        .limit(limit)
    )
    return [ScheduledTask.model_validate(dict(row)) for row in conn.execute(query).mappings()]


def _has_unfinished(conn: Connection, name: str) -> bool:
    query = (
        select(tasks.c.task_id)
        .where(tasks.c.schedule == name, tasks.c.status.in_(UNFINISHED_VALUES))
        .limit(1)
    )
    return conn.execute(query).first() is not None


def fire(conn: Connection, firings: Sequence[Firing], *, replica: str) -> list[StoredTask]:
    """Inserts each firing's tasks that no replica inserted yet (ON CONFLICT DO NOTHING on
    the (schedule, scheduled_for) key) and moves each schedule's `last_tick_at` forward;
    returns the tasks this call inserted."""
    inserted: list[StoredTask] = []
    statement = _dialect_insert(conn)(tasks).on_conflict_do_nothing().returning(*tasks.c)
    for firing in firings:
        wanted = list(firing.tick_tasks)
        if firing.skip_when_unfinished:
            wanted = [] if _has_unfinished(conn, firing.schedule) else wanted[:1]
        for task in wanted:
            row = conn.execute(statement.values(**task.model_dump())).mappings().first()
            if row is not None:
                inserted.append(task_from_row(row))
        conn.execute(
            update(schedules)
            .where(
                schedules.c.name == firing.schedule,
                or_(
                    schedules.c.last_tick_at.is_(None),
                    schedules.c.last_tick_at < firing.latest_tick,
                ),
            )
            .values(last_tick_at=firing.latest_tick)
        )
    log_transitions(
        conn, [(task.task_id, None, TaskStatus.PENDING, replica, 0) for task in inserted]
    )
    return inserted
