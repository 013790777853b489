"""Two replicas in one process sharing the database and Redis: cancel anywhere, counts."""

import time

import pytest
import redis.asyncio as aioredis
from conftest import AppClient
from helpers import create, eventually, wait_for

pytestmark = pytest.mark.anyio


async def test_cancel_through_one_replica_stops_the_run_on_another(
    app_client: AppClient, redis_client: "aioredis.Redis", redis_prefix: str
) -> None:
    # A long heartbeat interval: the cancel must come by message, not by lease renewal.
    async with (
        app_client(heartbeat_interval_s=30, lease_s=90) as replica_a,
        app_client(heartbeat_interval_s=30, lease_s=90) as replica_b,
    ):
        task = await create(replica_a, hang=True)
        await wait_for(replica_a, task["task_id"], {"running"})
        runner_a = replica_a.app.state.context.runner  # type: ignore[attr-defined]
        assert runner_a.local_run(task["task_id"]) is not None

        started = time.monotonic()
        response = await replica_b.post(f"/v1/tasks/{task['task_id']}/cancel")
        assert response.status_code == 202
        assert response.json()["status"] == "cancelled"
        assert time.monotonic() - started < 1.0

        async def zero() -> bool:
            return await redis_client.get(f"{redis_prefix}active:hello") == "0"

        await eventually(zero)


async def test_a_missed_cancel_message_is_honoured_at_the_next_renewal(
    app_client: AppClient,
) -> None:
    async with app_client() as replica_a:
        task = await create(replica_a, hang=True)
        await wait_for(replica_a, task["task_id"], {"running"})
        context = replica_a.app.state.context  # type: ignore[attr-defined]
        # Record the cancel as another replica would, without any message.

        assert await context.store.request_cancel(task_id=task["task_id"])
        finished = await wait_for(replica_a, task["task_id"], timeout_s=3)
        assert finished["status"] == "cancelled"


async def test_active_counts_add_up_over_replicas(
    app_client: AppClient, redis_client: "aioredis.Redis", redis_prefix: str
) -> None:
    async with app_client() as replica_a, app_client() as replica_b:
        tasks = [await create(replica_a, hang=True) for _ in range(2)]
        tasks.append(await create(replica_b, hang=True))
        for task in tasks:
            await wait_for(replica_a, task["task_id"], {"running"})

        async def three() -> bool:
            return await redis_client.get(f"{redis_prefix}active:hello") == "3"

        await eventually(three)
        shares = await redis_client.hgetall(f"{redis_prefix}active-by-replica:hello")
        assert sorted(v for k, v in shares.items() if not k.endswith(":seq")) == ["1", "2"]
        for task in tasks:
            await replica_b.post(f"/v1/tasks/{task['task_id']}/cancel")

        async def zero() -> bool:
            return await redis_client.get(f"{redis_prefix}active:hello") == "0"

        await eventually(zero)
