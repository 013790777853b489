"""Everything one replica holds while it runs, built and torn down by the app's lifespan."""

import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import anyio.abc
import httpx
import redis.asyncio as aioredis
import sniffio

from app.algorithms.hello import HelloAlgorithm
from app.algorithms.registry import Registry
from app.algorithms.remote import RemoteAlgorithm
from app.core.config import Settings
from app.core.db import Database
from app.core.migrations import upgrade_to_head
from app.core.redis import EmbeddedRedis, create_client
from app.live.keys import RedisKeys
from app.live.rate import RequestRate
from app.live.state import LiveState
from app.live.subscriber import Subscriber
from app.live.updates import UpdateHub
from app.native import JobWatcher, load_library
from app.runner.heartbeat import Heartbeat
from app.runner.local_runs import LoopParts
from app.runner.retention import Retention
from app.runner.runner import Runner
from app.runner.scheduler import Scheduler
from app.runner.sweeper import Sweeper
from app.service.algorithms import AlgorithmService
from app.service.bulk import BulkActions
from app.service.callbacks import CallbackReceiver, apply_foreign_update
from app.service.keys import KeyService
from app.service.schedules import ScheduleService
from app.service.sessions import Sessions
from app.service.tasks import TaskService
from app.service.waits import TaskWatcher
from app.store import TaskStore
from app.store.keys import KeyStore

log = logging.getLogger(__name__)


def new_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class ReplicaContext:
    settings: Settings
    replica_id: str
    db: Database
    store: TaskStore
    redis: "aioredis.Redis"
    live: LiveState
    runner: Runner
    service: TaskService
    updates: UpdateHub
    watch: TaskWatcher
    callbacks: CallbackReceiver
    keys: KeyService
    rate: RequestRate
    algorithms: AlgorithmService
    sessions: Sessions  # the dashboard's sign-in cookies
    bulk: BulkActions
    schedules: ScheduleService
    # unix://… of the embedded redis-server; None when TASKBEAT_REDIS_URL names a Redis
    embedded_redis_url: str | None = None


def _launch_embedded_redis(settings: Settings, stack: AsyncExitStack) -> EmbeddedRedis | None:
    """Forks the embedded redis-server when no TASKBEAT_REDIS_URL names one; it starts
    while the database is migrated, and `stack` stops it."""
    if settings.redis_url:
        return None
    embedded = EmbeddedRedis(settings.embedded_redis_socket_path)
    # Forked here, on the event loop's thread, not on a worker thread: the child's
    # parent-death signal fires when the thread that forked it exits.
    embedded.launch()
    stack.push_async_callback(anyio.to_thread.run_sync, embedded.stop)
    return embedded


async def _redis_url(settings: Settings, embedded: EmbeddedRedis | None) -> str:
    if settings.redis_url:
        return settings.redis_url
    assert embedded is not None, "launched when no TASKBEAT_REDIS_URL is set"
    await anyio.to_thread.run_sync(embedded.wait_ready)
    log.info(
        "embedded Redis at %s (read it with `taskbeat heartbeats` here, or redis-cli -s %s)",
        embedded.url,
        embedded.socket_path,
    )
    return embedded.url


async def _run_loops(
    scope: anyio.CancelScope,
    loops: Sequence[Any],  # async callables taking `task_status`
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Starts each loop (waiting for it to signal readiness) inside `scope`, then runs
    them until the scope is cancelled."""
    with scope:
        async with anyio.create_task_group() as tg:
            for loop in loops:
                await tg.start(loop)
            task_status.started()


@asynccontextmanager
async def running_replica(settings: Settings) -> AsyncIterator[ReplicaContext]:
    """Migrates, connects, starts the runner; on exit drains it and closes every client."""
    replica_id = new_replica_id()
    async with AsyncExitStack() as stack:
        # anyio asks which library runs at every Event, CancelScope and task it makes; named
        # for this thread, the answer is an attribute read, not a look at the running loop
        # and task (that look was ~10 % of the loop's CPU under create load)
        stack.callback(setattr, sniffio.thread_local, "name", sniffio.thread_local.name)
        sniffio.thread_local.name = "asyncio"
        embedded_redis = _launch_embedded_redis(settings, stack)
        await anyio.to_thread.run_sync(upgrade_to_head, settings.database_url)
        db = Database(settings.database_url)
        stack.push_async_callback(db.dispose)
        store = TaskStore(db)
        keys = KeyService(settings, KeyStore(db))
        await keys.start(host=settings.host)  # before the runner starts: it may refuse
        redis_url = await _redis_url(settings, embedded_redis)
        redis_client = create_client(redis_url)
        stack.push_async_callback(redis_client.aclose)
        live = LiveState(redis_client, RedisKeys(settings.redis_prefix), replica_id)

        library = load_library()
        watcher = JobWatcher.for_library(library)
        registry = Registry()
        registry.add(HelloAlgorithm(library, watcher))
        if settings.remote_algorithms:  # its TLS context costs a start without them ~50 ms
            http_client = httpx.AsyncClient()
            stack.push_async_callback(http_client.aclose)
            for remote in settings.remote_algorithms:
                registry.add(RemoteAlgorithm(remote, http_client))
        updates = UpdateHub(redis_client, live.keys, replica_id)

        runner = Runner(
            settings=settings,
            store=store,
            live=live,
            registry=registry,
            replica_id=replica_id,
            updates=updates,
        )
        service = TaskService(
            settings=settings,
            store=store,
            live=live,
            runner=runner,
            registry=registry,
            updates=updates,
        )
        updates.on_foreign_update = partial(apply_foreign_update, service)
        updates.runs_here = lambda task_id: runner.local_run(task_id) is not None
        watch = TaskWatcher(service, updates)
        callbacks = CallbackReceiver(service)
        loop_parts = LoopParts(settings, store, live, updates, runner, replica_id, runner.metrics)
        heartbeat, sweeper = Heartbeat(loop_parts), Sweeper(loop_parts)
        scheduler = Scheduler(
            store=store,
            policies=runner.policies,
            admission=runner.admission,
            replica_id=replica_id,
            declared={
                name: fields.model_dump(mode="json") for name, fields in settings.schedules.items()
            },
        )

        async def on_work(hint: str) -> None:
            await scheduler.on_hint(hint)
            await runner.admission.on_hint(hint)

        subscriber = Subscriber(
            redis_client,
            live.keys,
            on_update=updates.receive,
            on_cancel=runner.cancel_local,
            on_resubscribed=updates.resync_all,
            on_work=on_work,
        )
        await live.register_scripts()
        async with anyio.create_task_group() as tg:
            await tg.start(watcher.run)
            await tg.start(updates.run)
            await tg.start(live.run_events.run)
            await tg.start(runner.loop_lag.run)
            await tg.start(runner.run)
            # The replica's loops, next to the runner; stopped before it hands its tasks back.
            loops = anyio.CancelScope()
            replica_loops = (
                subscriber.run,
                heartbeat.run,
                sweeper.run,
                runner.admission.run,
                Retention(loop_parts).run,
                scheduler.run,
            )
            await tg.start(_run_loops, loops, replica_loops)
            log.info("replica %s ready", replica_id)
            try:
                yield ReplicaContext(
                    settings,
                    replica_id,
                    db,
                    store,
                    redis_client,
                    live,
                    runner,
                    service,
                    updates,
                    watch,
                    callbacks,
                    keys,
                    RequestRate(redis_client, live.keys),
                    AlgorithmService(runner),
                    Sessions(settings, keys),
                    BulkActions(service),
                    ScheduleService(runner, scheduler),
                    embedded_redis_url=None if settings.redis_url else redis_url,
                )
            finally:
                with anyio.CancelScope(shield=True):
                    await runner.stop_runs(settings.shutdown_grace_s)
                    loops.cancel()
                    await runner.hand_back()
                tg.cancel_scope.cancel()
        log.info("replica %s stopped", replica_id)
