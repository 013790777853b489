"""The replica's heartbeat: every interval, one Redis round trip for all its running tasks,
one database row that renews its lease (which also says which tasks it still holds and
which were asked to cancel), and a periodic save of progress."""

import logging
import time

import anyio
import anyio.abc

from app.core.faults import every
from app.domain.models import TaskStatus
from app.runner.local_runs import LoopParts
from app.store import lease_deadline

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, parts: LoopParts) -> None:
        self._settings = parts.settings
        self._store = parts.store
        self._live = parts.live
        self._updates = parts.updates
        self._runs = parts.runs
        self._replica_id = parts.replica_id
        # monotonic time of the last renewal that reached the database
        self.last_renewal_s = time.monotonic()
        self._last_progress_save_s = 0.0
        # Runs the database says this replica runs but it does not: handed back when a
        # second renewal in a row still finds them so (never a run that is just starting).
        self._orphans_seen: frozenset[tuple[str, int]] = frozenset()

    async def beat_once(self) -> None:
        beaten = self._runs.running_progress()
        if await self._live.beat(beaten, self._runs.active_counts()):
            ended = [task_id for task_id in beaten if not self._runs.is_local(task_id)]
            if ended:
                await self._live.clear(ended)
        self._updates.publish_progress(self._runs.running_attempts())
        await self._renew()
        await self._save_progress()

    async def _renew(self) -> None:
        lease_s = self._settings.lease_duration_s
        started_s = time.monotonic()
        try:
            renewal = await self._store.renew_lease(
                replica_id=self._replica_id, lease_until=lease_deadline(lease_s)
            )
        except Exception as exc:
            log.warning("could not renew the lease: %s", exc)
            if started_s - self.last_renewal_s > lease_s:
                self._runs.fence(held=frozenset(), before_s=started_s)
            return
        self.last_renewal_s = started_s
        self._runs.fence(held=renewal.held, before_s=started_s)
        for task_id, attempt in renewal.cancelled:
            self._updates.status_changed(task_id, TaskStatus.CANCELLED, attempt)
        for task_id in renewal.cancel_asked:  # a cancel whose message this replica missed
            if self._runs.cancel_undelivered(task_id):
                await self._runs.cancel_local(task_id)
        await self._hand_back_orphans(renewal.running)

    async def _hand_back_orphans(self, running: frozenset[tuple[str, int]]) -> None:
        orphans = frozenset(run for run in running if not self._runs.is_local(run[0]))
        again = orphans & self._orphans_seen
        self._orphans_seen = orphans - again
        if again:
            handed = await self._store.hand_back_orphans(
                owner=self._replica_id, orphans=sorted(again)
            )
            log.warning("handed back %d running tasks with no run here", handed)
            if handed:
                await self._runs.work_queued()  # back in the queue: any free replica takes it

    async def _save_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress_save_s < self._settings.progress_persist_interval_s:
            return
        self._last_progress_save_s = now
        try:
            await self._store.save_progress(
                owner=self._replica_id, progress_by_task=self._runs.progress_to_save()
            )
        except Exception as exc:
            log.warning("could not save progress: %s", exc)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        await every(self._settings.heartbeat_interval_s, self.beat_once, what="heartbeat")
