"""Retention: one replica at a time deletes the finished tasks older than their
algorithm's `retention_s` (TASKBEAT_RETENTION_S by default), with their events and
attempts, in bounded batches with a pause between them, so that no transaction holds a
lock for long and creates go on meanwhile."""

import logging
import secrets
from datetime import timedelta

import anyio
import anyio.abc

from app.core.faults import every
from app.domain.models import utcnow
from app.runner.local_runs import LoopParts

log = logging.getLogger(__name__)
BATCH = 500  # tasks per delete transaction
BATCH_PAUSE_S = 0.05  # between two batches: the writes of creates and runs go first
MAX_BATCHES_PER_PASS = 200  # a pass ends; the next one goes on where it stopped
LOCK_TTL_S = 60.0


class Retention:
    def __init__(self, parts: LoopParts) -> None:
        self._settings = parts.settings
        self._store = parts.store
        self._live = parts.live
        self._runs = parts.runs

    async def pass_once(self) -> int:
        """Deletes the expired tasks (unless another replica is doing it); returns how many."""
        token = secrets.token_hex(8)
        lock = self._live.keys.retention_lock
        if not await self._live.take_lock(lock, token, LOCK_TTL_S):
            return 0
        try:
            return await self._delete_batches()
        finally:
            await self._live.release_lock(lock, token)

    async def _delete_batches(self) -> int:
        deleted = 0
        for batch in range(MAX_BATCHES_PER_PASS):
            if batch:
                await anyio.sleep(BATCH_PAUSE_S)
            now = utcnow()
            cutoffs = {
                name: now - timedelta(seconds=self._runs.policy_of(name).retention_s)
                for name in self._runs.algorithm_names()
            }
            default_cutoff = now - timedelta(seconds=self._settings.retention_s)
            count = await self._store.delete_expired(
                cutoffs=cutoffs, default_cutoff=default_cutoff, limit=BATCH
            )
            deleted += count
            if count < BATCH:
                break
        if deleted:
            log.info("retention: %d finished tasks deleted", deleted)
        return deleted

    async def _pass(self) -> None:
        await self.pass_once()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        interval_s = self._settings.retention_interval_s
        await anyio.sleep(interval_s)  # not urgent: the start's own work goes first
        await every(interval_s, self._pass, what="retention")
