"""The live state of runs in Redis: heartbeats, progress, active counts, replica beats.

Redis is never the only copy of anything: every call here tolerates Redis being away
(logged, then skipped), and the next heartbeat restores what a restarted Redis lost.
"""

import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import redis.asyncio as aioredis

from app.core.batching import Outbox
from app.core.faults import REDIS_AWAY
from app.live.keys import HEARTBEAT_TTL_S, RedisKeys
from app.live.scripts import BEAT, RELEASE_LOCK, SYNC_REPLICA_COUNT, register_all, with_scripts

log = logging.getLogger(__name__)
T = TypeVar("T")


MAX_RUN_EVENTS_PER_TRIP = 1024


@dataclass(frozen=True, slots=True)
class _RunEvent:
    task_id: str
    algorithm: str
    count: int  # the replica's running tasks of the algorithm right after this event
    started: bool


class LiveState:
    def __init__(self, client: "aioredis.Redis", keys: RedisKeys, replica_id: str) -> None:
        self.client = client
        self.keys = keys
        self.replica_id = replica_id
        self._sequence = itertools.count()
        # Ended tasks whose live keys could not be deleted (Redis away): the next beat does.
        self._uncleared: set[str] = set()
        # Runs that start or end meanwhile share one round trip; nobody waits for it.
        self.run_events: Outbox[_RunEvent] = Outbox(
            self._send_run_events, max_batch=MAX_RUN_EVENTS_PER_TRIP, name="run events"
        )

    async def _tolerant(self, what: str, call: Callable[[], Awaitable[T]]) -> T | None:
        try:
            return await call()
        except REDIS_AWAY as exc:
            log.warning("redis unavailable, skipped %s: %s", what, exc)
            return None

    def _queue_counts(self, pipe: Any, counts: Mapping[str, int]) -> None:
        for algorithm, count in counts.items():
            keys = (self.keys.active(algorithm), self.keys.active_by_replica(algorithm))
            SYNC_REPLICA_COUNT.queue(pipe, keys, (self.replica_id, count, next(self._sequence)))

    def _queue_beat(self, pipe: Any, progress_by_task: Mapping[str, int]) -> None:
        keys = self.keys
        BEAT.queue(
            pipe,
            (keys.heartbeats, keys.progress, keys.task_replica, keys.replicas),
            (
                keys.heartbeat(""),
                int(time.time()),
                HEARTBEAT_TTL_S,
                self.replica_id,
                time.time(),
                json.dumps(progress_by_task, separators=(",", ":")),
            ),
        )

    async def beat(self, progress_by_task: Mapping[str, int], counts: Mapping[str, int]) -> bool:
        """One round trip of a few commands: every running task's heartbeat and progress,
        the replica's beat and its active counts (which restores them after a Redis
        restart), and any cleanup that failed before."""

        async def send() -> bool:
            pipe = self.client.pipeline(transaction=False)
            self._queue_beat(pipe, progress_by_task)
            self._queue_counts(pipe, counts)
            uncleared = list(self._uncleared)
            if uncleared:
                self._queue_clear(pipe, uncleared)
            await with_scripts(self.client, pipe.execute)
            self._uncleared.difference_update(uncleared)
            return True

        return await self._tolerant("heartbeat", send) is True

    def started(self, task_id: str, algorithm: str, count: int) -> None:
        """A run started; `count` is this replica's running tasks of the algorithm now."""
        self.run_events.put(_RunEvent(task_id, algorithm, count, started=True))

    def finished(self, task_id: str, algorithm: str, count: int) -> None:
        """A run ended: its live keys go; `count` as in `started`."""
        self.run_events.put(_RunEvent(task_id, algorithm, count, started=False))

    async def _send_run_events(self, events: Sequence[_RunEvent]) -> None:
        latest = {event.task_id: event for event in events}  # a run may start and end here
        counts = {event.algorithm: event.count for event in events}
        started = {task_id: 0 for task_id, event in latest.items() if event.started}
        ended = [task_id for task_id, event in latest.items() if not event.started]

        async def send() -> bool:
            pipe = self.client.pipeline(transaction=False)
            if started:
                self._queue_beat(pipe, started)
            if ended:
                self._queue_clear(pipe, ended)
            self._queue_counts(pipe, counts)
            await with_scripts(self.client, pipe.execute)
            return True

        if await self._tolerant("run starts and ends", send) is None:
            self._uncleared.update(ended)

    def _queue_clear(self, pipe: Any, task_ids: list[str]) -> None:
        pipe.delete(*(self.keys.heartbeat(task_id) for task_id in task_ids))
        pipe.zrem(self.keys.heartbeats, *task_ids)
        pipe.hdel(self.keys.progress, *task_ids)
        pipe.hdel(self.keys.task_replica, *task_ids)

    async def clear(self, task_ids: list[str]) -> None:
        """Deletes the live keys of ended tasks again: a heartbeat that was in flight while
        they ended may have written them after their own cleanup."""

        async def send() -> bool:
            pipe = self.client.pipeline(transaction=False)
            self._queue_clear(pipe, task_ids)
            await pipe.execute()
            return True

        if await self._tolerant("clear ended tasks", send) is None:
            self._uncleared.update(task_ids)

    async def dead_replicas(self, *, silent_for_s: float) -> list[str]:
        """Replicas whose last beat is older than `silent_for_s` (never this one)."""

        async def read() -> list[str]:
            cutoff = time.time() - silent_for_s
            found = await self.client.zrangebyscore(self.keys.replicas, "-inf", cutoff)
            return [str(replica) for replica in found if replica != self.replica_id]

        return await self._tolerant("dead replicas", read) or []

    async def forget_replica(self, replica_id: str, algorithms: list[str]) -> None:
        """Drops a dead replica from the replica set and from every active count."""

        async def send() -> None:
            pipe = self.client.pipeline(transaction=False)
            for algorithm in algorithms:
                keys = (self.keys.active(algorithm), self.keys.active_by_replica(algorithm))
                SYNC_REPLICA_COUNT.queue(pipe, keys, (replica_id,))
            pipe.zrem(self.keys.replicas, replica_id)
            await with_scripts(self.client, pipe.execute)

        await self._tolerant("forget replica", send)

    async def active_counts(self, algorithms: list[str]) -> dict[str, int]:
        async def read() -> list[Any]:
            return list(await self.client.mget([self.keys.active(a) for a in algorithms]))

        values = await self._tolerant("active counts", read) if algorithms else []
        return {a: int(v or 0) for a, v in zip(algorithms, values or [], strict=False)}

    async def progress_and_heartbeats(
        self, task_ids: Sequence[str]
    ) -> dict[str, tuple[int | None, datetime | None]]:
        """Running tasks' live progress and last heartbeat, as any replica wrote them, in one
        round trip however many tasks; (None, None) for what Redis does not say."""
        if not task_ids:
            return {}

        async def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.hmget(self.keys.progress, list(task_ids))
            pipe.mget([self.keys.heartbeat(task_id) for task_id in task_ids])
            return list(await pipe.execute())

        values = await self._tolerant("live progress", read)
        if values is None:
            return dict.fromkeys(task_ids, (None, None))
        progress, beats = values
        return {
            task_id: (
                int(value) if value is not None else None,
                datetime.fromtimestamp(int(beat), UTC) if beat is not None else None,
            )
            for task_id, value, beat in zip(task_ids, progress, beats, strict=True)
        }

    async def ping(self) -> None:
        await self.client.ping()

    async def register_scripts(self) -> None:
        """Registers the Lua scripts once at start (tolerant: they load on first use too)."""
        await self._tolerant("script registration", lambda: register_all(self.client))

    async def publish_cancel(self, task_id: str) -> None:
        """Tells every replica that `task_id`'s cancel was asked (its owner stops the run)."""
        try:
            await self.client.publish(self.keys.cancel_channel, task_id)
        except REDIS_AWAY as exc:
            log.warning(
                "task %s: cancel message not sent (%s); the owner sees it later", task_id, exc
            )

    async def publish_cancels(self, task_ids: Sequence[str]) -> None:
        """`publish_cancel` for many tasks, in one round trip."""
        if not task_ids:
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for task_id in task_ids:
                    pipe.publish(self.keys.cancel_channel, task_id)
                await pipe.execute()
        except REDIS_AWAY as exc:
            count = len(task_ids)
            log.warning("%d cancel messages not sent (%s); owners see them later", count, exc)

    async def take_lock(self, key: str, token: str, ttl_s: float) -> bool:
        """Only one replica does the locked work (a sweep, a retention pass) at a time;
        without Redis, do it anyway (the work is safe to race: every write is conditional)."""
        try:
            taken = await self.client.set(key, token, nx=True, px=int(ttl_s * 1000))
        except REDIS_AWAY:
            return True
        return bool(taken)

    async def release_lock(self, key: str, token: str) -> None:
        """Releases `key` if this replica (its `token`) still holds it."""
        await self._tolerant(
            "lock release", lambda: RELEASE_LOCK.run(self.client, (key,), (token,))
        )
