"""The replica's heartbeat: every interval, one Redis round trip for all its running tasks,
one database row that renews its lease, and a periodic save of progress."""

import logging
import time
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from app.domain.models import TaskStatus as Status
from app.runner.loops import every
from app.store import lease_deadline

if TYPE_CHECKING:
    from app.runner.runner import Runner

log = logging.getLogger(__name__)


async def beat_once(runner: "Runner") -> None:
    settings = runner.settings
    beaten = runner.running_progress()
    if await runner.live.beat(beaten, runner.active_counts()):
        ended = [task_id for task_id in beaten if runner.local_run(task_id) is None]
        if ended:
            await runner.live.clear(ended)
    runner.updates.publish_progress(runner.running_attempts())
    renewal_started_s = time.monotonic()
    lease_until = lease_deadline(settings.lease_duration_s)
    try:
        renewal = await runner.store.renew_lease(
            replica_id=runner.replica_id, lease_until=lease_until
        )
    except Exception as exc:
        log.warning("could not renew the lease: %s", exc)
        if renewal_started_s - runner.last_renewal_s > settings.lease_duration_s:
            runner.fence(held=frozenset(), before_s=renewal_started_s)
        return
    runner.last_renewal_s = renewal_started_s
    runner.fence(held=renewal.held, before_s=renewal_started_s)
    for task_id, attempt in renewal.cancelled:
        runner.updates.status_changed(task_id, Status.CANCELLED, attempt)
    for task_id in renewal.cancel_asked:
        run = runner.local_run(task_id)
        if run is not None and not run.cancel_delivered:
            await runner.cancel_local(task_id)
    now = time.monotonic()
    if now - runner.last_progress_save_s >= settings.progress_persist_interval_s:
        runner.last_progress_save_s = now
        try:
            await runner.store.save_progress(
                owner=runner.replica_id, progress_by_task=runner.progress_to_save()
            )
        except Exception as exc:
            log.warning("could not save progress: %s", exc)


async def heartbeat_loop(
    runner: "Runner", *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    task_status.started()
    await every(runner.settings.heartbeat_interval_s, lambda: beat_once(runner), what="heartbeat")
