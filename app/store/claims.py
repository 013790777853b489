"""The claim: a replica with free run slots takes the next due tasks from the one queue.

On PostgreSQL the rows are read FOR UPDATE SKIP LOCKED, so replicas never take the same
task; the algorithm's policy row is locked first, so its limit holds (app.store.policies).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, select, update

from app.domain.models import StoredTask, TaskStatus, utcnow
from app.domain.policy import Policy
from app.store.events import log_transitions
from app.store.policies import due, lock_policies, room_for, start_values
from app.store.runs import cancel_asked_pending
from app.store.tables import task_from_row, tasks


@dataclass(frozen=True, slots=True)
class Claim:
    started: list[StoredTask]  # moved to running for the claimer
    cancelled: list[StoredTask]  # waiting tasks whose cancel was asked, ended here
    more_waiting: bool  # due tasks were left for want of room: look again when room frees


def _more_due(conn: Connection, name: str, now: datetime) -> bool:
    query = select(tasks.c.task_id).where(tasks.c.algorithm == name, due(now)).limit(1)
    return conn.execute(query).first() is not None


def claim(conn: Connection, *, owner: str, base: Mapping[str, Policy], slots: int) -> Claim:
    """Moves up to `slots` due tasks to running for `owner`, each algorithm within its
    cluster-wide limit, highest priority first, then oldest; waiting tasks whose cancel
    was asked end cancelled here."""
    now = utcnow()
    cancelled = cancel_asked_pending(
        conn, and_(tasks.c.owner.is_(None), tasks.c.algorithm.in_(sorted(base))), replica=owner
    )
    started: list[StoredTask] = []
    more_waiting = False
    for name, policy in sorted(lock_policies(conn, base).items()):
        if policy.paused_at(now):
            continue  # its resume (a hint, or paused_until) wakes the replicas
        room = min(slots - len(started), room_for(conn, policy, now))
        if room <= 0:
            more_waiting = more_waiting or _more_due(conn, name, now)
            continue
        next_due = (
            select(tasks.c.task_id)
            .where(tasks.c.algorithm == name, due(now), tasks.c.cancel_requested.is_(False))
            .order_by(tasks.c.priority.desc(), tasks.c.created_at, tasks.c.task_id)
            .limit(room + 1)  # one more tells whether any is left
            .with_for_update(skip_locked=True)
        )
        ids = list(conn.execute(next_due).scalars())
        more_waiting = more_waiting or len(ids) > room
        if not ids[:room]:
            continue
        statement = (
            update(tasks)
            .where(tasks.c.task_id.in_(ids[:room]), due(now))
            .values(**start_values(owner, now))
            .returning(*tasks.c)
        )
        started += [task_from_row(row) for row in conn.execute(statement).mappings()]
    log_transitions(
        conn,
        [(t.task_id, TaskStatus.PENDING, TaskStatus.RUNNING, owner, t.attempt) for t in started],
    )
    return Claim(started, cancelled, more_waiting)
