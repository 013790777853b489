"""max_active holds over the whole cluster: three served replicas on PostgreSQL, sampled
every 50 ms from the database, never run more than the limit, even when one is killed."""

import json
import signal
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from app.core.db import driver_url

pytestmark = pytest.mark.anyio
LIMIT = 3
TASKS = 30
SAMPLE_EVERY_S = 0.05


async def run_under_the_limit(
    database_url: str,
    start_server: Callable[..., Any],
    *,
    kill_one_after: int | None = None,
) -> None:
    policy = json.dumps({"hello": {"max_active": LIMIT, "retry_base_s": 0.1}})
    servers = [start_server(TASKBEAT_ALGORITHMS=policy) for _ in range(3)]
    engine = create_engine(driver_url(database_url), poolclass=NullPool)
    samples: list[int] = []
    count = text("SELECT count(*) FROM tasks WHERE algorithm = 'hello' AND status = 'running'")

    def running_now() -> int:
        with engine.connect() as conn:
            return int(conn.execute(count).scalar_one())

    async def sample(stop: anyio.Event) -> None:
        while not stop.is_set():
            samples.append(await anyio.to_thread.run_sync(running_now))
            await anyio.sleep(SAMPLE_EVERY_S)

    try:
        async with httpx.AsyncClient(timeout=10) as client:
            stop = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(sample, stop)
                task_ids = []
                for n in range(TASKS):
                    live = (
                        servers[1:]
                        if kill_one_after is not None and n >= kill_one_after
                        else servers
                    )
                    server = live[n % len(live)]
                    body = {"algorithm": "hello", "input": {"duration_ms": 200}}
                    response = await client.post(f"{server.url}/v1/tasks", json=body)
                    assert response.status_code == 202, response.text
                    task_ids.append(response.json()["task_id"])
                    if n == kill_one_after:
                        await anyio.sleep(0.3)  # it holds runs when it dies
                        servers[0].stop(signal.SIGKILL)
                reader = servers[-1].url
                with anyio.fail_after(90):
                    for task_id in task_ids:
                        while True:
                            task = (await client.get(f"{reader}/v1/tasks/{task_id}")).json()
                            if task["status"] not in ("pending", "running"):
                                break
                            await anyio.sleep(0.1)
                        assert task["status"] == "succeeded", task
                stop.set()
    finally:
        engine.dispose()
    assert max(samples) <= LIMIT, samples
    assert max(samples) == LIMIT  # the limit was reached: the test could have failed
    assert len(samples) > 20


async def test_three_replicas_never_run_more_than_max_active(
    database_url: str, start_server: Callable[..., Any]
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("replicas in several processes share PostgreSQL")
    await run_under_the_limit(database_url, start_server)


async def test_the_limit_holds_when_a_replica_is_killed_midway(
    database_url: str, start_server: Callable[..., Any]
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("replicas in several processes share PostgreSQL")
    await run_under_the_limit(database_url, start_server, kill_one_after=TASKS // 3)
