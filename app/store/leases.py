"""Ownership: one lease row per replica, renewed by its heartbeat; the takeover of tasks
whose owner's lease lapsed; the hand-back at drain."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, insert, select, update

from app.domain.models import StoredTask, TaskStatus, utcnow
from app.store.events import apply_transition, log_transitions
from app.store.policies import log_attempts
from app.store.runs import cancel_asked_pending
from app.store.tables import UNFINISHED_VALUES, replicas, task_from_row, tasks


@dataclass(frozen=True, slots=True)
class Renewal:
    held: frozenset[str]  # unfinished tasks the owner still holds
    cancel_asked: frozenset[str]  # among them, those whose cancel was asked
    cancelled: tuple[tuple[str, int], ...] = ()  # (task_id, attempt) of pending ones it ended
    running: frozenset[tuple[str, int]] = frozenset()  # (task_id, attempt) it holds running


@dataclass(frozen=True, slots=True)
class Takeover:
    """What becomes of one abandoned task: its new status and the columns that change."""

    task: StoredTask  # as the sweeper saw it
    to_status: TaskStatus
    values: dict[str, Any]


def lease_deadline(lease_s: float) -> datetime:
    return utcnow() + timedelta(seconds=lease_s)


def _lapsed() -> Any:
    return replicas.c.lease_expires_at < utcnow()


def _owns_unfinished() -> Any:
    return exists().where(
        tasks.c.owner == replicas.c.replica_id, tasks.c.status.in_(UNFINISHED_VALUES)
    )


def _set_lease(conn: Connection, replica_id: str, lease_until: datetime) -> None:
    renewed = conn.execute(
        update(replicas)
        .where(replicas.c.replica_id == replica_id)
        .values(lease_expires_at=lease_until)
    )
    if renewed.rowcount == 0:
        conn.execute(insert(replicas).values(replica_id=replica_id, lease_expires_at=lease_until))


def renew(conn: Connection, *, replica_id: str, lease_until: datetime) -> Renewal:
    """Extends the replica's hold on all its unfinished tasks (one row, whatever their
    number). What it no longer holds was taken over; a cancel it missed is in
    `cancel_asked`, and its pending tasks whose cancel was asked end cancelled here. A
    takeover of its tasks holds the row's lock, so a renewal that races it waits and then
    sees the tasks gone."""
    _set_lease(conn, replica_id, lease_until)
    cancelled = cancel_asked_pending(conn, tasks.c.owner == replica_id, replica=replica_id)
    held_query = select(
        tasks.c.task_id, tasks.c.cancel_requested, tasks.c.status, tasks.c.attempt
    ).where(tasks.c.owner == replica_id, tasks.c.status.in_(UNFINISHED_VALUES))
    rows = conn.execute(held_query).all()
    running = TaskStatus.RUNNING.value
    return Renewal(
        held=frozenset(row.task_id for row in rows),
        cancel_asked=frozenset(row.task_id for row in rows if row.cancel_requested),
        cancelled=tuple((task.task_id, task.attempt) for task in cancelled),
        running=frozenset((row.task_id, row.attempt) for row in rows if row.status == running),
    )


def hand_back_orphans(conn: Connection, *, owner: str, orphans: Sequence[tuple[str, int]]) -> int:
    """running -> pending, with no holder, for the owner's (task_id, attempt) runs that it no
    longer runs (a start whose answer was lost, an outcome the database never took), so
    that a sweeper runs them again; conditional on owner, attempt and status."""
    handed = 0
    for task_id, attempt in sorted(orphans):
        statement = (
            update(tasks)
            .where(
                tasks.c.task_id == task_id,
                tasks.c.owner == owner,
                tasks.c.attempt == attempt,
                tasks.c.status == TaskStatus.RUNNING.value,
            )
            .values(status=TaskStatus.PENDING.value, owner=None)
            .returning(tasks.c.attempt)
        )
        row = apply_transition(
            conn,
            statement,
            task_id=task_id,
            from_status=TaskStatus.RUNNING,
            to_status=TaskStatus.PENDING,
            replica=owner,
        )
        handed += row is not None
    return handed


def join(conn: Connection, *, replica_id: str, lease_until: datetime) -> None:
    """Takes the replica's lease before it owns any task, and forgets replicas whose lease
    lapsed and who hold nothing any more (each replica that starts tidies up once)."""
    conn.execute(delete(replicas).where(_lapsed(), ~_owns_unfinished()))
    _set_lease(conn, replica_id, lease_until)


def expired_tasks(conn: Connection, *, limit: int) -> list[StoredTask]:
    """Unfinished tasks owned by a replica whose lease lapsed (or that has no lease at all);
    a task with no owner waits in the queue, for whoever claims it."""
    live_replicas = select(replicas.c.replica_id).where(~_lapsed())
    query = (
        select(tasks)
        .where(
            tasks.c.status.in_(UNFINISHED_VALUES),
            tasks.c.owner.is_not(None),
            tasks.c.owner.not_in(live_replicas),
        )
        .order_by(tasks.c.created_at)
        .limit(limit)
    )
    return [task_from_row(row) for row in conn.execute(query).mappings()]


def _same_holder(task: StoredTask) -> Any:
    """Compare-and-set guard: the row is still as the sweeper saw it, its cancel flag too
    (a cancel asked since is honoured by the next sweep, never dropped by this one)."""
    owner = tasks.c.owner.is_(None) if task.owner is None else tasks.c.owner == task.owner
    return and_(
        tasks.c.task_id == task.task_id,
        tasks.c.status == task.status.value,
        tasks.c.attempt == task.attempt,
        tasks.c.cancel_requested.is_(task.cancel_requested),
        owner,
    )


def _still_lapsed(conn: Connection, owners: set[str]) -> set[str]:
    """Of these owners, those whose lease is still lapsed (or absent); their lease rows stay
    locked until the takeover commits, so none of them renews in between."""
    rows = conn.execute(
        select(replicas.c.replica_id, _lapsed().label("lapsed"))
        .where(replicas.c.replica_id.in_(sorted(owners)))
        .order_by(replicas.c.replica_id)
        .with_for_update()
    ).all()
    return owners - {replica_id for replica_id, lapsed in rows if not lapsed}


def take_over(conn: Connection, *, plans: Sequence[Takeover], replica: str) -> list[Takeover]:
    """Applies every plan whose task is still exactly as it was seen (compare-and-set on
    status, attempt, owner and cancel flag) and whose owner's lease is still lapsed; returns
    the plans applied. Forgets the lapsed replicas left holding nothing."""
    owners = {plan.task.owner for plan in plans if plan.task.owner is not None}
    lapsed = _still_lapsed(conn, owners) if owners else set()
    applied = []
    for plan in sorted(plans, key=lambda plan: plan.task.task_id):
        if plan.task.owner is not None and plan.task.owner not in lapsed:
            continue  # its replica renewed meanwhile: it still runs the task
        statement = (
            update(tasks)
            .where(_same_holder(plan.task))
            .values(status=plan.to_status.value, **plan.values)
            .returning(tasks.c.attempt)
        )
        if apply_transition(
            conn,
            statement,
            task_id=plan.task.task_id,
            from_status=plan.task.status,
            to_status=plan.to_status,
            replica=replica,
        ):
            applied.append(plan)
    log_attempts(
        conn,
        [
            (
                p.task.task_id,
                p.task.attempt,
                "lost",
                p.values.get("error"),
                p.task.owner,
                p.task.started_at,
            )
            for p in applied
            if p.task.status is TaskStatus.RUNNING
        ],
    )
    if lapsed:
        conn.execute(delete(replicas).where(replicas.c.replica_id.in_(lapsed), ~_owns_unfinished()))
    return applied


def release_all(conn: Connection, *, owner: str) -> int:
    """Hands the owner's unfinished tasks back to the queue (pending, no holder) for any
    replica to claim now, and gives up the owner's lease."""
    mine = and_(tasks.c.owner == owner, tasks.c.status.in_(UNFINISHED_VALUES))
    held = conn.execute(select(tasks.c.task_id, tasks.c.status, tasks.c.attempt).where(mine)).all()
    conn.execute(update(tasks).where(mine).values(status=TaskStatus.PENDING.value, owner=None))
    log_transitions(
        conn,
        [
            (task_id, TaskStatus(status), TaskStatus.PENDING, owner, attempt)
            for task_id, status, attempt in held
        ],
    )
    conn.execute(delete(replicas).where(replicas.c.replica_id == owner))
    return len(held)
