"""Event-loop lag: measured inside the replica and shown on /v1/stats."""

import time

import anyio
import httpx
import pytest
from helpers import create, eventually, wait_for

from app.runner.lag import LoopLagMonitor, percentile

pytestmark = pytest.mark.anyio


async def test_a_blocking_call_in_the_replica_shows_up_on_stats(client: httpx.AsyncClient) -> None:
    async def lag_ms() -> dict[str, float] | None:
        lag = (await client.get("/v1/stats")).json()["event_loop_lag_ms"]
        return lag if lag["samples"] > 0 else None

    before = await eventually(lag_ms, timeout_s=5)
    assert before["max"] < 800, before  # nothing has blocked this loop for that long yet
    # The in-process app shares the test's loop: this blocks the replica's loop on purpose.
    time.sleep(1.0)  # noqa: ASYNC251

    async def blocked_lag_ms() -> dict[str, float] | None:
        lag = await lag_ms()
        return lag if lag is not None and lag["max"] >= 800 else None

    after = await eventually(blocked_lag_ms, timeout_s=5)
    assert after["samples"] > before["samples"]


async def test_a_blocked_loop_shows_up_as_lag() -> None:
    monitor = LoopLagMonitor(interval_s=0.01)
    async with anyio.create_task_group() as tg:
        await tg.start(monitor.run)
        await anyio.sleep(0.05)
        # Blocks the loop on purpose: a slower machine only makes the lag larger.
        time.sleep(0.2)  # noqa: ASYNC251
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert monitor.summary()["max"] >= 100


def test_the_window_is_bounded_and_percentiles_are_ordered() -> None:
    monitor = LoopLagMonitor(window=10)
    for lag_ms in range(100):
        monitor.record(float(lag_ms))
    summary = monitor.summary()
    assert summary["samples"] == 10
    assert summary["p50"] == 94.0
    assert summary["max"] == summary["p99"] == 99.0
    monitor.record(-1.0)
    assert monitor.summary()["samples"] == 10
    assert percentile([], 0.99) == 0.0


async def test_the_notice_latency_of_finished_runs_shows_up_on_stats(
    client: httpx.AsyncClient,
) -> None:
    before = (await client.get("/v1/stats")).json()["notice_latency_ms"]
    assert before["samples"] == 0
    created_s = time.time()
    tasks = [await create(client, duration_ms=300) for _ in range(5)]
    for task in tasks:
        await wait_for(client, task["task_id"], {"succeeded"})
    # Every job ended at or after created + 300 ms, and was committed before we saw it.
    bound_ms = (time.time() - created_s - 0.3) * 1000

    async def noticed() -> dict[str, float] | None:
        latency = (await client.get("/v1/stats")).json()["notice_latency_ms"]
        return latency if latency["samples"] == 5 else None

    latency = await eventually(noticed)
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"] <= bound_ms, (latency, bound_ms)
    scraped = (await client.get("/metrics")).text
    assert "taskbeat_notice_latency_seconds_count 5.0" in scraped
