"""Makes and drops the PostgreSQL databases the tests run on."""

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from sqlalchemy.engine import make_url


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _execute(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(_dsn(url))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def create_database(admin_url: str, name: str) -> None:
    asyncio.run(_execute(admin_url, f'CREATE DATABASE "{name}"'))


def drop_database(admin_url: str, name: str) -> None:
    asyncio.run(_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def truncate_tasks(url: str) -> None:
    """Empties the tables of an already migrated database (a no-op before the first run)."""
    statement = (
        "DO $$ BEGIN IF to_regclass('replicas') IS NOT NULL"
        " THEN TRUNCATE tasks, task_events, replicas; END IF;"
        " IF to_regclass('api_keys') IS NOT NULL THEN TRUNCATE api_keys; END IF;"
        " IF to_regclass('algorithm_policies') IS NOT NULL"
        " THEN TRUNCATE algorithm_policies, task_attempts; END IF;"
        " IF to_regclass('idempotency_keys') IS NOT NULL THEN TRUNCATE idempotency_keys; END IF;"
        " IF to_regclass('schedules') IS NOT NULL THEN TRUNCATE schedules; END IF;"
        " END $$"
    )
    asyncio.run(_execute(url, statement))


@contextmanager
def fresh_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database next to `admin_url`'s; yields its URL and drops it after."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    create_database(admin_url, name)
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(admin_url, name)
