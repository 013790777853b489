"""A delayed task is not tied to the replica that took its create: on two replicas on
PostgreSQL, with the receiving one SIGKILLed before it is due (or every replica
restarted), it starts once, within 1 s after its run_at, on a replica that lives."""

import signal
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from app.core.db import driver_url

pytestmark = pytest.mark.anyio
LATE_S = 1.0


def parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


def starts_of(database_url: str, task_id: str) -> list[tuple[str, int]]:
    """(replica, attempt) of every pending -> running transition of the task."""
    engine = create_engine(driver_url(database_url), poolclass=NullPool)
    query = text(
        "SELECT replica, attempt FROM task_events"
        " WHERE task_id = :id AND to_status = 'running' ORDER BY id"
    )
    try:
        with engine.connect() as conn:
            return [(str(r), int(a)) for r, a in conn.execute(query, {"id": task_id}).all()]
    finally:
        engine.dispose()


async def replica_id(client: httpx.AsyncClient, url: str) -> str:
    return str((await client.get(f"{url}/v1/stats")).json()["replica"]["id"])


async def finished(client: httpx.AsyncClient, url: str, task_id: str) -> dict[str, Any]:
    with anyio.fail_after(15):
        while True:
            task = dict((await client.get(f"{url}/v1/tasks/{task_id}")).json())
            if task["status"] not in ("pending", "running"):
                return task
            await anyio.sleep(0.05)


def assert_on_time(task: dict[str, Any]) -> None:
    assert task["status"] == "succeeded", task
    run_at, started = parse(task["run_at"]), parse(task["started_at"])
    assert run_at <= started <= run_at + timedelta(seconds=LATE_S), (run_at, started)


async def test_the_other_replica_starts_it_when_the_receiver_died(
    database_url: str, start_server: Callable[..., Any]
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("replicas in several processes share PostgreSQL")
    receiver, other = start_server(), start_server()
    async with httpx.AsyncClient(timeout=10) as client:
        other_id = await replica_id(client, other.url)
        body = {"algorithm": "hello", "input": {"duration_ms": 100}, "delay_s": 2.5}
        response = await client.post(f"{receiver.url}/v1/tasks", json=body)
        assert response.status_code == 202, response.text
        created = response.json()
        assert created["status"] == "pending"
        await anyio.sleep(0.5)
        receiver.stop(signal.SIGKILL)
        task = await finished(client, other.url, created["task_id"])
    assert_on_time(task)
    assert starts_of(database_url, created["task_id"]) == [(other_id, 1)]


async def test_it_starts_on_time_after_every_replica_restarted(
    database_url: str, start_server: Callable[..., Any]
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("replicas in several processes share PostgreSQL")
    first = [start_server(), start_server()]
    async with httpx.AsyncClient(timeout=10) as client:
        body = {"algorithm": "hello", "input": {"duration_ms": 100}, "delay_s": 8}
        response = await client.post(f"{first[0].url}/v1/tasks", json=body)
        created = response.json()
        for server in first:
            server.stop(signal.SIGKILL)
        later = [start_server(), start_server()]
        task = await finished(client, later[1].url, created["task_id"])
        later_ids = {await replica_id(client, server.url) for server in later}
    assert_on_time(task)
    ((replica, attempt),) = starts_of(database_url, created["task_id"])
    assert replica in later_ids
    assert attempt == 1
