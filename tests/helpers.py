"""Small helpers the tests share."""

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

FINISHED = {"succeeded", "failed", "cancelled", "timed_out"}


async def create(client: httpx.AsyncClient, **input_fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"algorithm": "hello", "input": input_fields}
    response = await client.post("/v1/tasks", json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


async def wait_for(
    client: httpx.AsyncClient,
    task_id: str,
    statuses: set[str] = FINISHED,
    *,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Polls GET until the task is in one of `statuses`; fails the test at the timeout."""
    task: dict[str, Any] = {}
    with anyio.move_on_after(timeout_s):
        while True:
            response = await client.get(f"/v1/tasks/{task_id}")
            assert response.status_code == 200, response.text
            task = response.json()
            if task["status"] in statuses:
                return task
            await anyio.sleep(0.02)
    raise AssertionError(f"task {task_id} not in {statuses} after {timeout_s} s: {task}")


async def eventually(check: Any, *, timeout_s: float = 5.0, interval_s: float = 0.02) -> Any:
    """Calls the async `check` until it returns a truthy value; fails at the timeout."""
    last: Any = None
    with anyio.move_on_after(timeout_s):
        while True:
            last = await check()
            if last:
                return last
            await anyio.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s (last value: {last!r})")


@asynccontextmanager
async def holding_lock(database_url: str, pg_statement: str, **params: Any) -> AsyncIterator[None]:
    """Holds a lock from a connection of its own, as a slow transaction of another replica
    would: on PostgreSQL the rows `pg_statement` locks (SELECT ... FOR UPDATE), on SQLite
    the one write lock."""
    if database_url.startswith("sqlite"):
        path = database_url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        await anyio.to_thread.run_sync(conn.execute, "BEGIN IMMEDIATE")
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(conn.rollback)
            conn.close()
        return
    engine = create_engine(database_url, poolclass=NullPool)
    connection = await anyio.to_thread.run_sync(engine.connect)
    try:
        await anyio.to_thread.run_sync(connection.execute, text(pg_statement), params)
        yield
    finally:
        await anyio.to_thread.run_sync(connection.rollback)
        await anyio.to_thread.run_sync(connection.close)
        engine.dispose()
