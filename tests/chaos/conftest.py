"""Fixtures of the chaos suite (`make chaos`): replicas as real processes on one fresh
PostgreSQL database and one private redis-server."""

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pgadmin
import pytest
from serve_process import Server
from sqlalchemy.engine import make_url

from chaos.faults import RedisProcess

ADMIN_URL = os.environ.get("TASKBEAT_TEST_DATABASE_URL") or os.environ.get(
    "TASKBEAT_CHAOS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def chaos_database() -> Iterator[str]:
    with pgadmin.fresh_database(ADMIN_URL, "taskbeat_chaos") as url:
        yield url


@pytest.fixture
def chaos_redis() -> Iterator[RedisProcess]:
    redis_process = RedisProcess()
    redis_process.start()
    try:
        yield redis_process
    finally:
        redis_process.close()


Replicas = Callable[..., list[Server]]


@pytest.fixture
def start_replicas(
    chaos_database: str, chaos_redis: RedisProcess, tmp_path: Path
) -> Iterator[Replicas]:
    """`start_replicas(n, **env)`: n `taskbeat serve` processes sharing the database and Redis."""
    servers: list[Server] = []

    def start(count: int, **env: str) -> list[Server]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("TASKBEAT_")}
        base.update(
            TASKBEAT_DATABASE_URL=chaos_database,
            TASKBEAT_REDIS_URL=chaos_redis.url,
            TASKBEAT_LOG_LEVEL="info",
        )
        base.update(env)
        started = [Server(base, tmp_path / f"replica-{len(servers) + i}.log") for i in range(count)]
        servers.extend(started)
        for server in started:
            server.wait_ready()
        return started

    yield start
    for server in servers:
        server.stop(9)


@pytest.fixture
async def http(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as client:
        yield client


@pytest.fixture
async def sql(chaos_database: str, anyio_backend: str) -> AsyncIterator[Any]:
    """An asyncpg connection to the chaos database, for checks straight in the tables."""
    dsn = make_url(chaos_database).set(drivername="postgresql")
    connection = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        yield connection
    finally:
        await connection.close()
