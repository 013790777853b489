"""Faults inside a replica: it goes on, or it exits for its supervisor to restart it; it never
stays up unready. A cancel of a run whose job is gone changes nothing."""

import time
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio as aioredis
from conftest import AppClient
from helpers import create, eventually, holding_lock, wait_for

from app.algorithms.hello import HelloAlgorithm
from app.core.config import Settings
from app.core.db import Database
from app.domain.models import TaskStatus
from app.main import create_app
from app.native import JobWatcher, NativeLibrary, load_library
from app.store import TaskStore

pytestmark = pytest.mark.anyio

LOCK_TASK_ROW = "SELECT task_id FROM tasks WHERE task_id = :task_id FOR UPDATE"


async def test_cancelling_a_freed_or_unknown_job_is_a_no_op() -> None:
    lib: NativeLibrary = load_library()
    hello = HelloAlgorithm(lib, JobWatcher(lib))
    handle = await hello.submit({"hang": True}, task_id="t-1")
    await hello.cancel(handle)
    hello.release(handle)
    await hello.cancel(handle)  # freed: the job is gone, nothing to stop
    await hello.cancel(handle ^ 0x5A5A)  # never handed out


async def test_a_cancel_reaching_a_run_whose_job_was_freed_changes_nothing(
    client: httpx.AsyncClient, database_url: str, redis_client: "aioredis.Redis"
) -> None:
    context = client.app.state.context  # type: ignore[attr-defined]
    # Long enough that the row is locked before the job ends, even on a loaded machine.
    task_id = (await create(client, duration_ms=1500))["task_id"]
    await wait_for(client, task_id, {"running"})
    async with holding_lock(database_url, LOCK_TASK_ROW, task_id=task_id):
        # The job finishes and is freed; its outcome waits for the database.
        async def freed_and_persisting() -> bool:
            run = context.runner.local_run(task_id)
            return run is not None and run.persisting and run.handle is None

        await eventually(freed_and_persisting, timeout_s=10)
        assert await context.runner.cancel_local(task_id) is not None
        # As after a freeze: another replica's cancel message, read late.
        await redis_client.publish(context.live.keys.cancel_channel, task_id)
        await anyio.sleep(0.5)
        assert context.runner.accepting
    finished = await wait_for(client, task_id)
    assert finished["status"] == "succeeded"
    assert (await client.get("/readyz")).status_code == 200
    later = await create(client, duration_ms=50)
    assert (await wait_for(client, later["task_id"]))["status"] == "succeeded"


async def _ready_samples(http: httpx.AsyncClient, url: str, seconds: float) -> list[int]:
    statuses = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        statuses.append((await http.get(f"{url}/readyz")).status_code)
        await anyio.sleep(0.1)
    return statuses


async def test_garbage_on_the_replica_channels_is_survived(
    start_server: Any, session_redis_url: str, redis_prefix: str
) -> None:
    server = start_server()
    raw = aioredis.Redis.from_url(session_redis_url)  # bytes, as any Redis client may send
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        try:
            hanging = (await create(http, hang=True))["task_id"]
            await wait_for(http, hanging, {"running"})
            for channel in ("cancel", "updates"):
                await raw.publish(f"{redis_prefix}{channel}", b"\xff\xfe not UTF-8")
            samples = await _ready_samples(http, server.url, 2.0)
            assert server.process.poll() is None
            assert samples.count(503) <= 5, samples  # never unready for more than 0.5 s
            assert samples[-1] == 200
            # The subscription is back: a cancel message from another replica lands.
            await eventually(lambda: _subscribed(raw, f"{redis_prefix}cancel"), timeout_s=5)
            await raw.publish(f"{redis_prefix}cancel", hanging)
            assert (await wait_for(http, hanging, timeout_s=2))["status"] == "cancelled"
            # So is the updates subscriber: a long-poll hears a finish at once.
            task_id = (await create(http, duration_ms=300))["task_id"]
            waited = await http.get(f"/v1/tasks/{task_id}/wait", params={"timeout_s": 5})
            assert waited.json()["status"] == "succeeded"
        finally:
            await raw.aclose()
    log = server.log_path.read_text()
    # One subscription serves both channels; each bad message cost it a reconnect.
    assert "the subscription (resubscribing) failed on an unexpected error" in log
    assert "UnicodeDecodeError" in log  # with its traceback


async def _subscribed(client: "aioredis.Redis", channel: str) -> bool:
    counts = dict(await client.pubsub_numsub(channel))
    return bool(counts.get(channel.encode(), 0) >= 1)


async def test_a_replica_whose_runner_dies_stops_instead_of_serving_unready(
    make_settings: Any, redis_client: "aioredis.Redis"
) -> None:
    failures: list[float] = []
    settings: Settings = make_settings()
    app = create_app(settings, on_replica_failure=lambda: failures.append(time.monotonic()))

    async def a_bug() -> None:
        raise RuntimeError("a bug no loop expected")

    task_id = ""
    failed_at = 0.0

    async def serve_until_the_bug() -> None:
        nonlocal task_id, failed_at
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://taskbeat") as c:
                task_id = (await create(c, hang=True))["task_id"]
                await wait_for(c, task_id, {"running"})
                runner = app.state.context.runner
                assert runner._tg is not None
                failed_at = time.monotonic()
                runner._tg.start_soon(a_bug)  # as a loop that raises what nobody expected
                await anyio.sleep(10)  # cancelled by the failing replica well before

    with pytest.raises(BaseExceptionGroup) as raised:
        await serve_until_the_bug()
    assert raised.group_contains(RuntimeError, match="a bug no loop expected")
    assert app.state.replica_failed
    assert len(failures) == 1
    assert failures[0] - failed_at < 5
    # It handed its task back on the way out, for any replica to take at once.
    db = Database(settings.database_url)
    try:
        task = await TaskStore(db).get_task(task_id=task_id)
    finally:
        await db.dispose()
    assert task is not None
    assert (task.status, task.owner) == (TaskStatus.PENDING, None)


async def test_cancel_of_a_queued_task_on_a_full_replica_ends_it_at_once(
    app_client: AppClient,
) -> None:
    async with app_client(max_active=1) as client:
        context = client.app.state.context  # type: ignore[attr-defined]
        first = (await create(client, hang=True))["task_id"]
        await wait_for(client, first, {"running"})
        queued = (await create(client, duration_ms=50))["task_id"]
        # Recorded as a replica that saw it running would (its read raced the takeover).
        assert await context.store.request_cancel(task_id=queued)
        started = time.monotonic()
        finished = await wait_for(client, queued, timeout_s=3)
        assert finished["status"] == "cancelled"
        assert time.monotonic() - started < 2.0
        events = await context.store.task_history(task_id=queued)
        assert [(e.from_status, e.to_status) for e in events] == [
            (None, "pending"),
            ("pending", "cancelled"),
        ]
