"""The runner as users and monitors see it: heartbeats in Redis, active counts, poll
retries, timeouts, and many tasks at once."""

import time
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio as aioredis
from conftest import AppClient
from helpers import create, eventually, wait_for
from servers import over_http

pytestmark = pytest.mark.anyio


async def test_heartbeats_appear_while_running_and_vanish_after(
    client: httpx.AsyncClient, redis_client: "aioredis.Redis", redis_prefix: str
) -> None:
    task = await create(client, hang=True)
    task_id = task["task_id"]
    await wait_for(client, task_id, {"running"})
    hb_key = f"{redis_prefix}hb:{task_id}"

    first = int(await eventually(lambda: redis_client.get(hb_key)))
    assert abs(first - time.time()) < 5
    assert 0 < await redis_client.ttl(hb_key) <= 24 * 3600
    assert await redis_client.zscore(f"{redis_prefix}heartbeats", task_id) is not None
    replicas = await redis_client.zrange(f"{redis_prefix}replicas", 0, -1, withscores=True)
    assert len(replicas) == 1
    assert abs(replicas[0][1] - time.time()) < 5
    # The beat keeps moving (interval 0.2 s in tests; whole seconds in Redis).
    await eventually(lambda: _newer(redis_client, hb_key, first), timeout_s=3)

    await client.post(f"/v1/tasks/{task_id}/cancel")
    await eventually(lambda: _gone(redis_client, hb_key))
    assert await redis_client.zscore(f"{redis_prefix}heartbeats", task_id) is None
    assert await redis_client.hget(f"{redis_prefix}progress", task_id) is None


async def _newer(client: "aioredis.Redis", key: str, than: int) -> bool:
    value = await client.get(key)
    return value is not None and int(value) > than


async def _gone(client: "aioredis.Redis", key: str) -> bool:
    return not await client.exists(key)


async def test_active_counts_go_up_and_back_to_zero(
    client: httpx.AsyncClient, redis_client: "aioredis.Redis", redis_prefix: str
) -> None:
    tasks = [await create(client, hang=True) for _ in range(3)]
    for task in tasks:
        await wait_for(client, task["task_id"], {"running"})
    assert await redis_client.get(f"{redis_prefix}active:hello") == "3"
    stats = (await client.get("/v1/stats")).json()
    assert stats["active"] == {"hello": 3}
    assert (await client.get("/v1/algorithms")).json()["items"][0]["running"] == 3
    for task in tasks:
        await client.post(f"/v1/tasks/{task['task_id']}/cancel")

    async def zero() -> bool:
        return await redis_client.get(f"{redis_prefix}active:hello") == "0"

    await eventually(zero)
    assert (await client.get("/v1/stats")).json()["active"] == {"hello": 0}


async def test_progress_moves_with_every_step_between_polls(
    app_client: AppClient, redis_client: "aioredis.Redis", redis_prefix: str
) -> None:
    # The poll interval stays at its 3 s default: only the library's step notices move it.
    async with app_client() as client, over_http(client) as http:
        task = await create(http, duration_ms=2000, steps=10)
        await anyio.sleep(1.0)
        midway = (await http.get(f"/v1/tasks/{task['task_id']}")).json()
        assert midway["status"] == "running", midway
        assert 0 < midway["progress"] < 100, midway

        # The heartbeat (0.2 s here) carries it to Redis for monitors and other replicas.
        async def stored() -> int:
            return int(await redis_client.hget(f"{redis_prefix}progress", task["task_id"]) or 0)

        assert 0 < await eventually(stored, timeout_s=1.0) < 100
        done = await wait_for(http, task["task_id"])
        assert (done["status"], done["progress"]) == ("succeeded", 100)


async def test_poll_errors_are_retried(client: httpx.AsyncClient) -> None:
    task = await create(client, duration_ms=100, poll_errors=3)
    finished = await wait_for(client, task["task_id"])
    assert finished["status"] == "succeeded"
    assert finished["poll_failures"] == 3


async def test_the_sixth_failed_poll_in_a_row_fails_the_task(client: httpx.AsyncClient) -> None:
    task = await create(client, duration_ms=100, poll_errors=6)
    finished = await wait_for(client, task["task_id"])
    assert finished["status"] == "failed"
    assert finished["poll_failures"] == 6
    assert "6 failed polls in a row" in finished["error"]


async def test_five_failed_polls_are_survived(client: httpx.AsyncClient) -> None:
    task = await create(client, duration_ms=100, poll_errors=5)
    finished = await wait_for(client, task["task_id"])
    assert finished["status"] == "succeeded"
    assert finished["poll_failures"] == 5


async def test_algorithm_failure_is_reported(client: httpx.AsyncClient) -> None:
    task = await create(client, duration_ms=200, steps=4, fail_at_step=2, fail_message="boom")
    finished = await wait_for(client, task["task_id"])
    assert finished["status"] == "failed"
    assert "boom" in finished["error"]


async def test_timeout_ends_the_task_timed_out(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/tasks", json={"algorithm": "hello", "input": {"hang": True}, "timeout_s": 1}
    )
    task_id = response.json()["task_id"]
    finished = await wait_for(client, task_id, timeout_s=5)
    assert finished["status"] == "timed_out"
    assert "timed out after 1 s" in finished["error"]


async def test_custom_output(client: httpx.AsyncClient) -> None:
    task = await create(client, duration_ms=0, output="hola")
    assert (await wait_for(client, task["task_id"]))["result"] == {"output": "hola"}


async def test_a_thousand_concurrent_tasks_all_finish(
    app_client: AppClient, redis_client: "aioredis.Redis", redis_prefix: str
) -> None:
    async with app_client() as client:
        ids: list[str] = []

        async def make(count: int) -> None:
            for _ in range(count):
                ids.append((await create(client, duration_ms=300))["task_id"])

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(make, 50)
        assert len(set(ids)) == 1000

        async def all_done() -> bool:
            totals: dict[str, Any] = (await client.get("/v1/stats")).json()["totals"]
            return totals["succeeded"] == 1000

        await eventually(all_done, timeout_s=60, interval_s=0.2)
        totals = (await client.get("/v1/stats")).json()["totals"]
        assert totals == {
            "pending": 0, "running": 0, "succeeded": 1000,
            "failed": 0, "cancelled": 0, "timed_out": 0,
        }  # fmt: skip

        async def zero() -> bool:
            return await redis_client.get(f"{redis_prefix}active:hello") == "0"

        await eventually(zero)
        assert await redis_client.zcard(f"{redis_prefix}heartbeats") == 0
