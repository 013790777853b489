"""The sweeper: finds unfinished tasks whose holder stopped renewing its lease (a replica
that died, or tasks handed back on shutdown) and moves each on exactly once."""

import logging
import secrets
import time
from datetime import timedelta

import anyio
import anyio.abc

from app.core.faults import every
from app.domain.models import StoredTask, TaskStatus, utcnow
from app.domain.policy import Policy
from app.runner.local_runs import LoopParts
from app.store import EXPIRED_KEYS_PER_SWEEP, Takeover

log = logging.getLogger(__name__)
KEY_SWEEP_EVERY_S = 30.0


def plan_for(task: StoredTask, *, replica_id: str, policy: Policy) -> Takeover:
    """The fate of one abandoned task: cancelled (asked), failed (lost, and no attempt
    left for it), or back in the queue (a lost run retried after its backoff)."""
    holder = task.owner or "none (handed back)"
    ended = {"finished_at": utcnow()}
    if task.cancel_requested:
        return Takeover(task, TaskStatus.CANCELLED, {"error": "cancelled while unowned", **ended})
    if task.status is not TaskStatus.RUNNING:
        return Takeover(task, TaskStatus.PENDING, {"owner": None})
    lost = f"lost with replica {holder} during attempt {task.attempt}"
    if task.attempt >= task.max_attempts:
        error = f"{lost}; all {task.max_attempts} attempts used"
        return Takeover(task, TaskStatus.FAILED, {"error": error, **ended})
    if not policy.retries("lost", task.attempt, task.max_attempts):
        return Takeover(task, TaskStatus.FAILED, {"error": f"{lost}; not retried", **ended})
    retry_at = utcnow() + timedelta(seconds=policy.backoff_s(task.attempt))
    values = {"owner": None, "error": lost, "next_attempt_at": retry_at}
    return Takeover(task, TaskStatus.PENDING, values)


class Sweeper:
    def __init__(self, parts: LoopParts) -> None:
        self._settings = parts.settings
        self._store = parts.store
        self._live = parts.live
        self._updates = parts.updates
        self._runs = parts.runs
        self._replica_id = parts.replica_id
        self._next_key_sweep_s = 0.0  # monotonic time of the next sweep of expired keys

    async def sweep_once(self) -> None:
        token = secrets.token_hex(8)
        ttl_s = max(self._settings.heartbeat_interval_s * 2, 5.0)
        lock = self._live.keys.sweeper_lock
        if not await self._live.take_lock(lock, token, ttl_s):
            return
        try:
            await self._forget_silent_replicas()
            if self._runs.accepting:
                await self._take_over_abandoned()
            await self._sweep_idempotency_keys()
        finally:
            await self._live.release_lock(lock, token)

    async def _sweep_idempotency_keys(self) -> None:
        """One bounded delete of expired keys now and then; at once again while a sweep
        finds a full batch."""
        if time.monotonic() < self._next_key_sweep_s:
            return
        if await self._store.sweep_idempotency_keys() < EXPIRED_KEYS_PER_SWEEP:
            self._next_key_sweep_s = time.monotonic() + KEY_SWEEP_EVERY_S

    async def _forget_silent_replicas(self) -> None:
        silent_for_s = self._settings.lease_duration_s
        for replica in await self._live.dead_replicas(silent_for_s=silent_for_s):
            log.warning("replica %s stopped beating; its active counts are dropped", replica)
            await self._live.forget_replica(replica, self._runs.algorithm_names())

    async def _take_over_abandoned(self) -> None:
        plans = [
            plan_for(task, replica_id=self._replica_id, policy=self._runs.policy_of(task.algorithm))
            for task in await self._store.expired_tasks()
            # our own lease lapsed (database away): never take over from ourselves
            if task.owner != self._replica_id
        ]
        if not plans:
            return
        applied = await self._store.take_over(plans=plans, replica=self._replica_id)
        # The lost runs' heartbeats would look stale to monitors until a new run beats.
        await self._live.clear([plan.task.task_id for plan in applied])
        for plan in applied:
            task = plan.task
            log.warning("task %s of replica %s: %s", task.task_id, task.owner, plan.to_status.value)
            self._updates.status_changed(task.task_id, plan.to_status, task.attempt)
        if any(plan.to_status is TaskStatus.PENDING for plan in applied):
            await self._runs.work_queued()  # back in the queue: any free replica takes it

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        # Twice per heartbeat: a dead replica's tasks move on soon after its lease lapses.
        interval_s = self._settings.heartbeat_interval_s / 2
        await every(interval_s, self.sweep_once, what="sweep")
