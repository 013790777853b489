"""Schedules over several replica processes on PostgreSQL, with no leader: one task per
tick however many replicas fire it, no firing while the previous task runs (overlap
"skip"), and one catch-up task after every replica was down, not one per missed tick."""

import itertools
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest

pytestmark = pytest.mark.anyio
LATE_S = 4.0  # on time, a tick's task is made within a second or two of it


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def needs_postgres(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("replicas in several processes share PostgreSQL")


async def add_schedule(client: httpx.AsyncClient, url: str, **body: Any) -> None:
    body = {"algorithm": "hello", "input": {"duration_ms": 10}, "overlap": "allow", **body}
    response = await client.post(f"{url}/v1/schedules", json=body)
    assert response.status_code == 201, response.text


async def tasks_of(client: httpx.AsyncClient, url: str, schedule: str) -> list[dict[str, Any]]:
    params = {"schedule": schedule, "limit": 500}
    page = (await client.get(f"{url}/v1/tasks", params=params)).json()
    assert page["next_cursor"] is None
    return list(page["items"])


async def test_every_second_on_three_replicas_makes_one_task_per_tick(
    database_url: str, start_server: Callable[..., Any]
) -> None:
    needs_postgres(database_url)
    servers = [start_server() for _ in range(3)]
    async with httpx.AsyncClient(timeout=10) as client:
        await add_schedule(client, servers[0].url, name="beat", cron="@every 1s")
        began = datetime.now(UTC)
        await anyio.sleep(10)
        ended = datetime.now(UTC)
        tasks = await tasks_of(client, servers[1].url, "beat")
    ticks = Counter(at(task["scheduled_for"]) for task in tasks)
    assert max(ticks.values()) == 1, ticks
    # every whole second of the window has its task, but for at most one
    window = [
        began.replace(microsecond=0) + timedelta(seconds=n)
        for n in range(2, int((ended - began).total_seconds()) - 1)
    ]
    missing = [tick for tick in window if tick not in ticks]
    assert len(missing) <= 1, (missing, sorted(ticks))
    assert len(window) >= 7
    for task in tasks:  # each one fired on time, not caught up later
        assert at(task["created_at"]) - at(task["scheduled_for"]) < timedelta(seconds=LATE_S)


async def test_overlap_skip_fires_nothing_while_the_last_task_is_unfinished(
    database_url: str, start_server: Callable[..., Any]
) -> None:
    needs_postgres(database_url)
    servers = [start_server() for _ in range(3)]
    async with httpx.AsyncClient(timeout=10) as client:
        await add_schedule(
            client,
            servers[0].url,
            name="slow",
            cron="@every 1s",
            overlap="skip",
            input={"duration_ms": 3000},
        )
        await anyio.sleep(9)
        paused = await client.post(f"{servers[0].url}/v1/schedules/slow/pause")
        paused_at = datetime.now(UTC)
        assert paused.status_code == 200
        with anyio.fail_after(15):
            while True:
                tasks = await tasks_of(client, servers[2].url, "slow")
                if all(task["status"] not in ("pending", "running") for task in tasks):
                    break
                await anyio.sleep(0.2)
    tasks.sort(key=lambda task: task["scheduled_for"])
    assert 2 <= len(tasks) <= 3, [task["scheduled_for"] for task in tasks]
    assert all(task["status"] == "succeeded" for task in tasks)
    for previous, task in itertools.pairwise(tasks):
        assert at(task["created_at"]) >= at(previous["finished_at"]), (previous, task)
    # the pause made on one replica held on all three within a second
    assert all(at(task["scheduled_for"]) <= paused_at + timedelta(seconds=1) for task in tasks)


async def test_after_every_replica_was_down_one_catch_up_task_fires_not_five(
    database_url: str, start_server: Callable[..., Any]
) -> None:
    needs_postgres(database_url)
    servers = [start_server() for _ in range(3)]
    async with httpx.AsyncClient(timeout=10) as client:
        await add_schedule(client, servers[0].url, name="caught", cron="@every 1s", catchup_s=60)
        await add_schedule(client, servers[0].url, name="dropped", cron="@every 1s")
        await anyio.sleep(3)
        stopping = datetime.now(UTC)
        for server in servers:
            await anyio.to_thread.run_sync(server.stop)
        await anyio.sleep(5)
        restarted = datetime.now(UTC)
        servers = [start_server() for _ in range(3)]
        await anyio.sleep(3)
        caught = await tasks_of(client, servers[0].url, "caught")
        dropped = await tasks_of(client, servers[0].url, "dropped")

    def caught_up(tasks: list[dict[str, Any]]) -> list[datetime]:
        """The ticks fired late (caught up)."""
        late = timedelta(seconds=LATE_S)
        ticks = [
            at(t["scheduled_for"])
            for t in tasks
            if at(t["created_at"]) - at(t["scheduled_for"]) > late
        ]
        return sorted(ticks)

    (tick,) = caught_up(caught)  # one, not one per missed tick
    assert stopping < tick < restarted
    assert caught_up(dropped) == []
    on_time = [at(t["scheduled_for"]) for t in dropped if at(t["scheduled_for"]) < stopping]
    assert len(on_time) >= 2  # it ticked before the stop: the test could see a catch-up
    for tasks in (caught, dropped):  # and both go on ticking after the restart
        assert any(at(task["scheduled_for"]) > restarted for task in tasks)
