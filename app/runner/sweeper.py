"""The sweeper: finds unfinished tasks whose holder stopped renewing its lease (a replica
that died, or tasks handed back on shutdown) and moves each on exactly once."""

import logging
import secrets

import anyio
import anyio.abc

from app.core.config import Settings
from app.core.faults import every
from app.domain.models import StoredTask, TaskStatus, utcnow
from app.live.state import LiveState
from app.live.updates import UpdateHub
from app.runner.local_runs import LocalRuns
from app.store import Takeover, TaskStore

log = logging.getLogger(__name__)


def plan_for(task: StoredTask, *, replica_id: str, max_attempts: int) -> Takeover:
    """The fate of one abandoned task: cancelled (asked), failed (attempts used up), or
    pending again on this replica."""
    holder = task.owner or "none (handed back)"
    ended = {"finished_at": utcnow()}
    if task.cancel_requested:
        return Takeover(task, TaskStatus.CANCELLED, {"error": "cancelled while unowned", **ended})
    if task.status is TaskStatus.RUNNING and task.attempt >= max_attempts:
        error = (
            f"lost with replica {holder} during attempt {task.attempt}; "
            f"all {max_attempts} attempts used"
        )
        return Takeover(task, TaskStatus.FAILED, {"error": error, **ended})
    return Takeover(task, TaskStatus.PENDING, {"owner": replica_id})


class Sweeper:
    def __init__(
        self,
        *,
        settings: Settings,
        store: TaskStore,
        live: LiveState,
        updates: UpdateHub,
        runs: LocalRuns,
        replica_id: str,
    ) -> None:
        self._settings = settings
        self._store = store
        self._live = live
        self._updates = updates
        self._runs = runs
        self._replica_id = replica_id

    async def sweep_once(self) -> None:
        token = secrets.token_hex(8)
        ttl_s = max(self._settings.heartbeat_interval_s * 2, 5.0)
        if not await self._live.take_sweeper_lock(token, ttl_s):
            return
        try:
            await self._forget_silent_replicas()
            if self._runs.accepting:
                await self._take_over_abandoned()
        finally:
            await self._live.release_sweeper_lock(token)

    async def _forget_silent_replicas(self) -> None:
        silent_for_s = self._settings.lease_duration_s
        for replica in await self._live.dead_replicas(silent_for_s=silent_for_s):
            log.warning("replica %s stopped beating; its active counts are dropped", replica)
            await self._live.forget_replica(replica, self._runs.algorithm_names())

    async def _take_over_abandoned(self) -> None:
        room = self._settings.max_pending - self._runs.waiting_count
        plans = []
        for task in await self._store.expired_tasks():
            if task.owner == self._replica_id:
                continue  # our own lease lapsed (database away); never adopt from ourselves
            plan = plan_for(
                task, replica_id=self._replica_id, max_attempts=self._settings.max_attempts
            )
            if plan.to_status is TaskStatus.PENDING:
                if room <= 0:
                    continue  # full here: another replica takes it
                room -= 1
            plans.append(plan)
        if not plans:
            return
        applied = await self._store.take_over(plans=plans, replica=self._replica_id)
        # The lost runs' heartbeats would look stale to monitors until a new run beats.
        await self._live.clear([plan.task.task_id for plan in applied])
        for plan in applied:
            task = plan.task
            log.warning("task %s of replica %s: %s", task.task_id, task.owner, plan.to_status.value)
            if plan.to_status is TaskStatus.PENDING:
                self._runs.enqueue(task.task_id)
            self._updates.status_changed(task.task_id, plan.to_status, task.attempt)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        # Twice per heartbeat: a dead replica's tasks move on soon after its lease lapses.
        interval_s = self._settings.heartbeat_interval_s / 2
        await every(interval_s, self.sweep_once, what="sweep")
