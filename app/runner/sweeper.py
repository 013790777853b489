"""The sweeper: finds unfinished tasks whose holder stopped renewing its lease (a replica
that died, or tasks handed back on shutdown) and moves each on exactly once."""

import contextlib
import logging
import secrets
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus
from redis.exceptions import RedisError

from app.domain.models import StoredTask, utcnow
from app.domain.models import TaskStatus as Status
from app.runner.loops import every
from app.store import Takeover

if TYPE_CHECKING:
    from app.runner.runner import Runner

log = logging.getLogger(__name__)

# Releases the lock only if this replica still holds it.
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


async def _try_lock(runner: "Runner", token: str, ttl_s: float) -> bool:
    """Only one replica sweeps at a time; without Redis, sweep anyway (updates are CAS)."""
    try:
        acquired = await runner.live.client.set(
            runner.live.keys.sweeper_lock, token, nx=True, px=int(ttl_s * 1000)
        )
        return bool(acquired)
    except (RedisError, OSError):
        return True


async def _unlock(runner: "Runner", token: str) -> None:
    with contextlib.suppress(RedisError, OSError):
        await runner.live.client.eval(RELEASE_LOCK, 1, runner.live.keys.sweeper_lock, token)


def plan_for(task: StoredTask, *, replica_id: str, max_attempts: int) -> Takeover:
    """The fate of one abandoned task: cancelled (asked), failed (attempts used up), or
    pending again on this replica."""
    holder = task.owner or "none (handed back)"
    ended = {"finished_at": utcnow()}
    if task.cancel_requested:
        return Takeover(task, Status.CANCELLED, {"error": "cancelled while unowned", **ended})
    if task.status is Status.RUNNING and task.attempt >= max_attempts:
        error = (
            f"lost with replica {holder} during attempt {task.attempt}; "
            f"all {max_attempts} attempts used"
        )
        return Takeover(task, Status.FAILED, {"error": error, **ended})
    return Takeover(task, Status.PENDING, {"owner": replica_id})


async def sweep_once(runner: "Runner") -> None:
    settings = runner.settings
    token = secrets.token_hex(8)
    ttl_s = max(settings.heartbeat_interval_s * 2, 5.0)
    if not await _try_lock(runner, token, ttl_s):
        return
    try:
        for replica in await runner.live.dead_replicas(silent_for_s=settings.lease_duration_s):
            log.warning("replica %s stopped beating; its active counts are dropped", replica)
            await runner.live.forget_replica(replica, runner.registry.names())
        if not runner.accepting:
            return
        room = settings.max_pending - runner.waiting_count
        plans = []
        for task in await runner.store.expired_tasks():
            if task.owner == runner.replica_id:
                continue  # our own lease lapsed (database away); never adopt from ourselves
            plan = plan_for(task, replica_id=runner.replica_id, max_attempts=settings.max_attempts)
            if plan.to_status is Status.PENDING:
                if room <= 0:
                    continue  # full here: another replica takes it
                room -= 1
            plans.append(plan)
        if not plans:
            return
        applied = await runner.store.take_over(plans=plans, replica=runner.replica_id)
        # The lost runs' heartbeats would look stale to monitors until a new run beats.
        await runner.live.clear([plan.task.task_id for plan in applied])
        for plan in applied:
            task = plan.task
            log.warning("task %s of replica %s: %s", task.task_id, task.owner, plan.to_status.value)
            if plan.to_status is Status.PENDING:
                runner.enqueue(task.task_id)
            runner.updates.status_changed(task.task_id, plan.to_status, task.attempt)
            if plan.to_status.finished:
                runner.metrics.task_finished(task.algorithm, plan.to_status)  # metrics
    finally:
        await _unlock(runner, token)


async def sweeper_loop(
    runner: "Runner", *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    task_status.started()
    # Twice per heartbeat: a dead replica's tasks move on soon after its lease lapses.
    await every(runner.settings.heartbeat_interval_s / 2, lambda: sweep_once(runner), what="sweep")
