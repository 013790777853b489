"""Persistence of tasks behind one object, `TaskStore`.

Every state change is a conditional update, so racing writers cannot both win, and a
replica that lost a task can never overwrite its new owner; every status change is
appended to task_events in the transaction that made it. Each method runs its SQL in one
transaction on a worker thread (app.core.db). The hot writes (create, cancel, run
start, run finish) share one group commit and task lookups another: what arrives together shares a
transaction, and each caller still waits for its own result.

The SQL lives by concern: `events` (the transition log), `reads` and `cursors`, `runs`
(the hot writes, cancels, progress), `leases` (renewal, takeover, hand-back), `policies`
(algorithm policies, cluster-wide room, attempts), `claims` (the one queue) and
`retention` (deleting old finished tasks) and `schedules` (schedules and the tasks
their ticks fire).
"""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from app.core.batching import GroupCommit
from app.core.db import Database
from app.domain.models import (
    FINISHED,
    AttemptPublic,
    StoredTask,
    TaskEvent,
    TaskStatus,
    utcnow,
)
from app.domain.outcome import Outcome
from app.domain.policy import Policy
from app.domain.schedule import ScheduledTask, StoredSchedule
from app.store import (
    bulk,
    claims,
    events,
    idempotency,
    leases,
    policies,
    reads,
    retention,
    runs,
    schedules,
)
from app.store.bulk import BulkAction, Selection
from app.store.cancels import Cancel, CancelAnswer
from app.store.cursors import decode_cursor
from app.store.idempotency import IdempotencyClaim
from app.store.leases import Renewal, Takeover, lease_deadline
from app.store.runs import Created

__all__ = [
    "CancelAnswer",
    "Created",
    "IdempotencyClaim",
    "Renewal",
    "Selection",
    "Takeover",
    "TaskStore",
    "lease_deadline",
]

# Rows one shared transaction may carry (well under SQLite's bound-parameter limit).
MAX_BATCH = 256
EXPIRED_PER_SWEEP = 500
EXPIRED_KEYS_PER_SWEEP = 1000


class TaskStore:
    """The tasks, their transition log and the replicas' leases, in one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._writes: GroupCommit[runs.HotWrite, Any] = GroupCommit(
            self._apply_writes, max_batch=MAX_BATCH, name="writes"
        )
        self._lookups: GroupCommit[str, StoredTask | None] = GroupCommit(
            self._apply_lookups, max_batch=MAX_BATCH, name="reads"
        )

    async def _apply_writes(self, writes: Sequence[runs.HotWrite]) -> list[Any]:
        return await self.db.write(lambda conn: runs.write_batch(conn, writes))

    async def _apply_lookups(self, task_ids: Sequence[str]) -> list[StoredTask | None]:
        return await self.db.read(lambda conn: reads.tasks_by_id(conn, task_ids))

    # ----- create and read -------------------------------------------------------------

    async def insert_task(
        self,
        *,
        task: StoredTask,
        start_for: str | None = None,
        policy: Policy | None = None,
        idempotency: IdempotencyClaim | None = None,
        max_unfinished: int | None = None,
    ) -> Created:
        """Stores a new task; answers it as committed. With `start_for` (and the configured
        `policy` of its algorithm), it is stored already running for that replica when the
        algorithm has room over the cluster, else waiting in the queue. With `idempotency`,
        a key taken already stores nothing and answers the key's first task. With
        `max_unfinished`, a create that would take its API key past that many unfinished
        tasks stores nothing (`over_limit`), counted in the insert's own transaction."""
        create = runs.Create(task, start_for, policy, idempotency, max_unfinished)
        created: Created = await self._writes.submit(create)
        return created

    async def sweep_idempotency_keys(self, *, limit: int = EXPIRED_KEYS_PER_SWEEP) -> int:
        """Deletes up to `limit` expired idempotency keys; returns how many."""
        return await self.db.write(lambda conn: idempotency.sweep_expired(conn, limit=limit))

    async def get_task(self, *, task_id: str) -> StoredTask | None:
        """The task as committed when the call was made. Lookups made meanwhile share one
        query: a worker-thread hop per lookup costs far more than the lookup itself."""
        return await self._lookups.submit(task_id)

    async def task_history(self, *, task_id: str) -> list[TaskEvent]:
        """The task's transitions, oldest first."""
        return await self.db.read(lambda conn: events.history(conn, task_id))

    async def list_tasks(
        self,
        *,
        status: TaskStatus | None = None,
        algorithm: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        api_key_id: str | None = None,
        schedule: str | None = None,
    ) -> tuple[list[StoredTask], str | None]:
        """A page of tasks, newest first, and the cursor of the next page (None at the end);
        InvalidCursor for a cursor this service did not give out."""
        after = None if cursor is None else decode_cursor(cursor)

        def page(conn: Connection) -> tuple[list[StoredTask], str | None]:
            return reads.page_of_tasks(
                conn,
                status=status,
                algorithm=algorithm,
                limit=limit,
                after=after,
                api_key_id=api_key_id,
                schedule=schedule,
            )

        return await self.db.read(page)

    async def count_by_status(self, *, api_key_id: str | None = None) -> dict[TaskStatus, int]:
        """Tasks by status (only the key's when `api_key_id` is given)."""
        return await self.db.read(lambda conn: reads.count_by_status(conn, api_key_id))

    # ----- a run -----------------------------------------------------------------------

    async def claim(self, *, owner: str, base: Mapping[str, Policy], slots: int) -> claims.Claim:
        """Up to `slots` due tasks moved to running for `owner` within each algorithm's
        cluster-wide limit (and the waiting ones whose cancel was asked, ended)."""
        return await self.db.write(
            lambda conn: claims.claim(conn, owner=owner, base=base, slots=slots)
        )

    async def finish_run(
        self,
        *,
        task_id: str,
        owner: str,
        attempt: int,
        outcome: Outcome,
        retry_at: datetime | None = None,
    ) -> bool:
        """running -> finished (or, with `retry_at`, back to the queue for another attempt),
        only for the run's own attempt and owner (fencing)."""
        if outcome.status not in FINISHED:
            raise ValueError(f"{outcome.status} is not a finished status")
        finish = runs.Finish(task_id, owner, attempt, outcome, retry_at)
        won: bool = await self._writes.submit(finish)
        return won

    async def attempts(self, *, task_id: str) -> list[AttemptPublic]:
        """Every ended run of the task, first first."""
        return await self.db.read(lambda conn: policies.attempts_of(conn, task_id))

    # ----- policies --------------------------------------------------------------------

    async def ensure_policies(self, *, names: Sequence[str]) -> None:
        await self.db.write(lambda conn: policies.ensure_rows(conn, names))

    async def policy_fields(self) -> dict[str, dict[str, Any]]:
        """algorithm -> the policy fields changed through the API."""
        return await self.db.read(policies.stored_fields)

    async def change_policy(self, *, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        return await self.db.write(
            lambda conn: policies.change_fields(conn, name=name, changes=changes)
        )

    async def queue_figures(self) -> dict[str, tuple[int, int]]:
        """algorithm -> (running, waiting) over the cluster."""
        return await self.db.read(policies.waiting_counts)

    async def next_due_at(self, *, names: Sequence[str]) -> datetime | None:
        """When the next waiting task becomes due, later than now (None: none waits)."""
        return await self.db.read(lambda conn: policies.next_due_at(conn, names, utcnow()))

    # ----- retention -------------------------------------------------------------------

    async def delete_finished(self, *, task_id: str) -> bool:
        """Deletes the task with its events and attempts if it is finished now; False when
        it is not (a re-run moved it back to pending since the caller read it)."""
        deleted = await self.db.write(lambda conn: retention.delete_tasks(conn, [task_id]))
        return deleted == 1

    async def delete_expired(
        self, *, cutoffs: Mapping[str, datetime], default_cutoff: datetime, limit: int
    ) -> int:
        """Deletes up to `limit` tasks finished before their algorithm's cutoff (any other
        algorithm's: `default_cutoff`), oldest first, in one short transaction."""
        return await self.db.write(
            lambda conn: retention.delete_expired(
                conn, cutoffs=cutoffs, default_cutoff=default_cutoff, limit=limit
            )
        )

    async def cancel(
        self, *, task_id: str, replica: str, api_key_id: str | None = None
    ) -> CancelAnswer | None:
        """pending -> cancelled at once; for a running task, records the cancel (and the key
        asking) so whoever runs it honours it; None for an unknown task. Shares the hot
        writes' transactions."""
        answer: CancelAnswer | None = await self._writes.submit(
            Cancel(task_id, replica, api_key_id)
        )
        return answer

    async def rerun(
        self, *, task_id: str, replica: str, api_key_id: str | None = None
    ) -> StoredTask | None:
        """A failed, cancelled or timed-out task back in the queue for its next attempt;
        None when it is not one of those (or unknown)."""
        moved = await self.db.write(
            lambda conn: bulk.rerun(conn, [task_id], replica=replica, api_key_id=api_key_id)
        )
        return moved[0] if moved else None

    async def cancel_page(
        self, *, selection: Selection, after: str
    ) -> tuple[list[str], list[CancelAnswer | None]]:
        """Cancels the next page (by task id, after `after`) of the unfinished tasks
        selected whose cancel nobody asked yet; returns the ids matched and the answers."""
        return await self.db.write(lambda conn: bulk.cancel_page(conn, selection, after=after))

    async def bulk_count(self, *, selection: Selection, action: BulkAction) -> int:
        """How many tasks a bulk `action` would take now."""
        return await self.db.read(lambda conn: bulk.count(conn, selection, action=action))

    async def rerun_page(
        self, *, selection: Selection, after: str
    ) -> tuple[list[str], list[StoredTask]]:
        """Re-runs the next page of the re-runnable tasks selected."""
        return await self.db.write(lambda conn: bulk.rerun_page(conn, selection, after=after))

    async def request_cancel(self, *, task_id: str, api_key_id: str | None = None) -> bool:
        """Records a cancel so whoever runs the task honours it, whatever its status now (as
        a cancel that read it running does); False if already finished."""
        return await self.db.write(
            lambda conn: runs.request_cancel(conn, task_id=task_id, api_key_id=api_key_id)
        )

    async def save_progress(
        self, *, owner: str, progress_by_task: Iterable[tuple[str, int, int]]
    ) -> None:
        """Persists (task_id, progress, poll_failures) of running tasks in one transaction."""
        rows = list(progress_by_task)
        if rows:
            await self.db.write(lambda conn: runs.save_progress(conn, owner=owner, rows=rows))

    # ----- ownership -------------------------------------------------------------------

    async def join(self, *, replica_id: str, lease_until: datetime) -> None:
        await self.db.write(
            lambda conn: leases.join(conn, replica_id=replica_id, lease_until=lease_until)
        )

    async def renew_lease(self, *, replica_id: str, lease_until: datetime) -> Renewal:
        return await self.db.write(
            lambda conn: leases.renew(conn, replica_id=replica_id, lease_until=lease_until)
        )

    async def hand_back_orphans(self, *, owner: str, orphans: Sequence[tuple[str, int]]) -> int:
        return await self.db.write(
            lambda conn: leases.hand_back_orphans(conn, owner=owner, orphans=orphans)
        )

    async def expired_tasks(self, *, limit: int = EXPIRED_PER_SWEEP) -> list[StoredTask]:
        return await self.db.read(lambda conn: leases.expired_tasks(conn, limit=limit))

    async def take_over(self, *, plans: Sequence[Takeover], replica: str) -> list[Takeover]:
        return await self.db.write(
            lambda conn: leases.take_over(conn, plans=plans, replica=replica)
        )

    async def release_all(self, *, owner: str) -> int:
        return await self.db.write(lambda conn: leases.release_all(conn, owner=owner))

    # ----- schedules -------------------------------------------------------------------

    async def all_schedules(self) -> list[StoredSchedule]:
        return await self.db.read(schedules.all_schedules)

    async def schedule(self, *, name: str) -> StoredSchedule | None:
        return await self.db.read(lambda conn: schedules.one(conn, name))

    async def create_schedule(self, *, name: str, fields: dict[str, Any]) -> StoredSchedule:
        """Conflict when a schedule has that name."""
        return await self.db.write(lambda conn: schedules.create(conn, name=name, fields=fields))

    async def change_schedule(
        self, *, name: str, fields: dict[str, Any], restart: bool
    ) -> StoredSchedule | None:
        return await self.db.write(
            lambda conn: schedules.change(conn, name=name, fields=fields, restart=restart)
        )

    async def delete_schedule(self, *, name: str) -> bool:
        return await self.db.write(lambda conn: schedules.remove(conn, name))

    async def apply_declared_schedules(self, *, declared: dict[str, dict[str, Any]]) -> None:
        await self.db.write(lambda conn: schedules.apply_declared(conn, declared))

    async def recent_scheduled(self, *, name: str) -> list[ScheduledTask]:
        return await self.db.read(lambda conn: schedules.recent_tasks(conn, name))

    async def fire(self, *, firings: Sequence[schedules.Firing], replica: str) -> list[StoredTask]:
        """The firings' tasks that no replica inserted before (one per tick, cluster-wide)."""
        return await self.db.write(lambda conn: schedules.fire(conn, firings, replica=replica))
