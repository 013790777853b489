"""Algorithm policies, the cluster-wide room of each algorithm, and the attempts log.

The limit guarantee lives here: every move of a task to `running` (a claim from the
queue, or a create that starts its run at once) first locks its algorithm's policy row
(FOR UPDATE on PostgreSQL; SQLite's one writer at a time is the same lock), then counts
the algorithm's running rows and moves at most `max_active` minus that count. Two
replicas that race serialize on the row, and the second one counts the first one's
claim, so the running rows of an algorithm never exceed its `max_active`.
"""

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.domain.models import AttemptPublic, TaskStatus, utcnow
from app.domain.policy import Policy
from app.store.tables import attempts, policies, tasks

log = logging.getLogger(__name__)

# (task_id, attempt, status, error, replica, started_at); finished_at is the write's time
AttemptEnd = tuple[str, int, str, str | None, str | None, datetime | None]


def ensure_rows(conn: Connection, names: Sequence[str]) -> None:
    """A policy row for every algorithm (the lock a claim takes), created empty once; two
    replicas starting together both ask, and the second one's insert does nothing."""
    dialect_insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    rows = [{"name": name, "fields": {}, "updated_at": utcnow()} for name in names]
    if rows:
        conn.execute(dialect_insert(policies).on_conflict_do_nothing(), rows)


def stored_fields(conn: Connection) -> dict[str, dict[str, Any]]:
    """name -> the fields changed through the API."""
    rows = conn.execute(select(policies.c.name, policies.c.fields)).all()
    return {name: dict(fields or {}) for name, fields in rows}


def change_fields(conn: Connection, *, name: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Lays `changes` over the row's fields (a None value drops the field: back to the
    configured value); returns the row's fields after the change."""
    row = conn.execute(
        select(policies.c.fields).where(policies.c.name == name).with_for_update()
    ).first()
    fields = dict(row[0] or {}) if row is not None else {}
    for key, value in changes.items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    values = {"fields": fields, "updated_at": utcnow()}
    if row is None:
        conn.execute(insert(policies).values(name=name, **values))
    else:
        conn.execute(update(policies).where(policies.c.name == name).values(**values))
    return fields


def in_force(base: Policy, fields: Mapping[str, Any]) -> Policy:
    """The configured policy with the stored fields over it; a stored field that no longer
    fits (configuration changed since) is ignored rather than stopping the queue."""
    try:
        return base.with_fields(dict(fields))
    except ValidationError as exc:
        log.warning("policy of %s: stored fields ignored: %s", base.name, exc)
        return base


def lock_policies(conn: Connection, base: Mapping[str, Policy]) -> dict[str, Policy]:
    """Locks the policy rows of these algorithms (in name order, as every locker does) and
    returns the policies in force."""
    rows = conn.execute(
        select(policies.c.name, policies.c.fields)
        .where(policies.c.name.in_(sorted(base)))
        .order_by(policies.c.name)
        .with_for_update()
    ).all()
    stored = {name: fields or {} for name, fields in rows}
    return {name: in_force(policy, stored.get(name, {})) for name, policy in base.items()}


def running_count(conn: Connection, algorithm: str) -> int:
    query = select(func.count()).where(
        tasks.c.algorithm == algorithm, tasks.c.status == TaskStatus.RUNNING.value
    )
    return int(conn.execute(query).scalar_one())


def room_for(conn: Connection, policy: Policy, now: datetime) -> int:
    """Runs the algorithm may start now over the cluster (its policy row locked)."""
    if policy.paused_at(now):
        return 0
    return max(0, policy.max_active - running_count(conn, policy.name))


def due(now: datetime) -> Any:
    return and_(
        tasks.c.status == TaskStatus.PENDING.value,
        tasks.c.owner.is_(None),
        or_(tasks.c.next_attempt_at.is_(None), tasks.c.next_attempt_at <= now),
    )


def start_values(owner: str, now: datetime) -> dict[str, Any]:
    """The columns of a run's start (its attempt number is one more than the last)."""
    return {
        "status": TaskStatus.RUNNING.value,
        "owner": owner,
        "attempt": tasks.c.attempt + 1,
        "progress": 0,
        "poll_failures": 0,
        "started_at": now,
        "next_attempt_at": None,
    }


def waiting_counts(conn: Connection) -> dict[str, tuple[int, int]]:
    """algorithm -> (running, waiting) over the cluster."""
    query = (
        select(tasks.c.algorithm, tasks.c.status, func.count())
        .where(tasks.c.status.in_([TaskStatus.RUNNING.value, TaskStatus.PENDING.value]))
        .group_by(tasks.c.algorithm, tasks.c.status)
    )
    counts: dict[str, tuple[int, int]] = {}
    for algorithm, status, count in conn.execute(query).all():
        running, waiting = counts.get(algorithm, (0, 0))
        if status == TaskStatus.RUNNING.value:
            running = int(count)
        else:
            waiting = int(count)
        counts[algorithm] = (running, waiting)
    return counts


def next_due_at(conn: Connection, names: Sequence[str], after: datetime) -> datetime | None:
    """When the next waiting task of these algorithms (a delayed start, a retry) becomes due
    after `after` (None: none waits for a time). An index range (ix_tasks_due)."""
    query = select(func.min(tasks.c.next_attempt_at)).where(
        tasks.c.status == TaskStatus.PENDING.value,
        tasks.c.next_attempt_at > after,
        tasks.c.algorithm.in_(names),
    )
    value: datetime | None = conn.execute(query).scalar_one_or_none()
    return value


def log_attempts(conn: Connection, ends: Sequence[AttemptEnd]) -> None:
    """Appends one row per ended run, in one executemany."""
    if not ends:
        return
    now = utcnow()
    conn.execute(
        insert(attempts),
        [
            {
                "task_id": task_id,
                "attempt": attempt,
                "status": status,
                "error": error,
                "replica": replica,
                "started_at": started_at,
                "finished_at": now,
            }
            for task_id, attempt, status, error, replica, started_at in ends
        ],
    )


def attempts_of(conn: Connection, task_id: str) -> list[AttemptPublic]:
    query = select(attempts).where(attempts.c.task_id == task_id).order_by(attempts.c.attempt)
    return [AttemptPublic.model_validate(dict(row)) for row in conn.execute(query).mappings()]
