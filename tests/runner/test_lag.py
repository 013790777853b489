"""Event-loop lag: measured inside the replica and shown on /v1/stats."""

import time

import anyio
import httpx
import pytest
from helpers import eventually

from app.runner.lag import LoopLagMonitor, percentile

pytestmark = pytest.mark.anyio


async def test_stats_show_the_event_loop_lag(client: httpx.AsyncClient) -> None:
    async def sampled() -> dict[str, float] | None:
        lag = (await client.get("/v1/stats")).json()["event_loop_lag_ms"]
        return lag if lag["samples"] > 0 else None

    lag = await eventually(sampled, timeout_s=5)
    for name in ("p50", "p99", "max"):
        assert isinstance(lag[name], int | float)
        assert lag[name] >= 0
    assert lag["max"] >= lag["p99"] >= lag["p50"]


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
