"""Fixtures: the real app on real SQLite or PostgreSQL and a real Redis.

TASKBEAT_TEST_DATABASE_URL (a PostgreSQL URL) runs the suite on a fresh PostgreSQL
database made for the session; unset, every test gets its own SQLite file.
TASKBEAT_TEST_REDIS_URL uses that Redis (each test under its own key prefix, cleaned up);
unset, the session starts one embedded redis-server.
"""

import os
import secrets
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from serve_process import Server

from app.core.config import Settings
from app.core.redis import EmbeddedRedis
from app.main import create_app

TEST_DATABASE_URL = os.environ.get("TASKBEAT_TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("TASKBEAT_TEST_REDIS_URL")

# Fast loops for tests; the poll interval keeps its default so that tests show a finished
# job is noticed through the library's notification, not by polling.
FAST = {
    "heartbeat_interval_s": 0.2,
    "lease_s": 1.0,
    "progress_persist_interval_s": 0.2,
    "shutdown_grace_s": 0.0,
    "retry_base_s": 0.1,
    "retry_max_s": 1.0,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database for the session, dropped afterwards."""
    if not TEST_DATABASE_URL:
        yield None
        return
    import pgadmin

    with pgadmin.fresh_database(TEST_DATABASE_URL, "taskbeat_test") as url:
        yield url


@pytest.fixture(scope="session")
def session_redis_url() -> Iterator[str]:
    if TEST_REDIS_URL:
        yield TEST_REDIS_URL
        return
    embedded = EmbeddedRedis()
    embedded.start()
    try:
        yield embedded.url
    finally:
        embedded.stop()


@pytest.fixture
def database_url(postgres_url: str | None, tmp_path: Path) -> Iterator[str]:
    if postgres_url is None:
        yield f"sqlite:///{tmp_path / 'taskbeat.db'}"
        return
    import pgadmin as admin

    admin.truncate_tasks(postgres_url)
    yield postgres_url


@pytest.fixture
def redis_prefix() -> str:
    return f"taskbeat-test-{secrets.token_hex(4)}:"


@pytest.fixture
async def redis_client(
    session_redis_url: str, redis_prefix: str, anyio_backend: str
) -> AsyncIterator["aioredis.Redis"]:
    client = aioredis.Redis.from_url(session_redis_url, decode_responses=True)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{redis_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
def make_settings(
    database_url: str, session_redis_url: str, redis_prefix: str
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "redis_url": session_redis_url,
            "redis_prefix": redis_prefix,
            **FAST,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


AppClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def app_client(make_settings: Callable[..., Settings], redis_client: Any) -> AppClient:
    """`async with app_client(**settings) as client`: the app with its lifespan running."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(make_settings(**overrides))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://taskbeat") as c:
                c.app = app  # type: ignore[attr-defined]
                yield c

    return start


@pytest.fixture
async def client(app_client: AppClient) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client() as c:
        yield c


@pytest.fixture
def serve_env(
    database_url: str, session_redis_url: str, redis_prefix: str, tmp_path: Path
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKBEAT_")}
    env.update({f"TASKBEAT_{key.upper()}": str(value) for key, value in FAST.items()})
    env.update(
        TASKBEAT_DATABASE_URL=database_url,
        TASKBEAT_REDIS_URL=session_redis_url,
        TASKBEAT_REDIS_PREFIX=redis_prefix,
        TASKBEAT_LOG_LEVEL="info",
        # where a test that empties TASKBEAT_REDIS_URL gets its embedded Redis
        TASKBEAT_EMBEDDED_REDIS_SOCKET=str(tmp_path / "redis.sock"),
    )
    return env


@pytest.fixture
def start_server(serve_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    servers: list[Server] = []

    def start(**env: str) -> Server:
        server = Server({**serve_env, **env}, tmp_path / "serve.log")
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop(signal.SIGKILL)
