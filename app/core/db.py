"""The store's engines. Each transaction runs whole on a worker thread (one hop from the
event loop per transaction, not one per statement): SQLite through the standard sqlite3
driver with one writer connection, PostgreSQL through psycopg."""

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy import create_engine as sqlalchemy_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from app.core.backoff import Backoff

log = logging.getLogger(__name__)

T = TypeVar("T")

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # WAL + NORMAL: a commit survives a process crash; only power loss may cost the last ones.
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
)
SQLITE_READERS = 8
POSTGRES_POOL = 10
# PostgreSQL may end a transaction to break a deadlock or a serialization conflict
# (SQLSTATE 40P01, 40001); nothing of it was kept, so it is run again from the start.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
TRANSACTION_FIRST_RETRY_S = 0.01
TRANSACTION_MAX_RETRY_S = 0.2
TRANSACTION_ATTEMPTS = 5


def driver_url(url: str) -> str:
    """The user's URL with the driver this service uses."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername.startswith("sqlite"):
        parsed = parsed.set(drivername="sqlite+pysqlite")
    elif parsed.drivername.startswith("postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _apply_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own BEGIN is off; the "begin" listeners below say BEGIN themselves.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def _begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def _begin_immediate(conn: Connection) -> None:
    # Take SQLite's write lock when the transaction starts, not at its first write: what a
    # writer reads in its transaction (e.g. "is this run still the holder?") stays true.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, *, pool_size: int = 5, writer: bool = False) -> Engine:
    """An engine for `url`, tuned for the backend; `writer` for SQLite's one writer."""
    full_url = driver_url(url)
    if full_url.startswith("sqlite"):
        engine = sqlalchemy_engine(
            full_url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=120,
            connect_args={"check_same_thread": False},
        )
        event.listen(engine, "connect", _apply_sqlite_pragmas)
        event.listen(engine, "begin", _begin_immediate if writer else _begin)
        return engine
    return sqlalchemy_engine(
        full_url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=30,
        pool_pre_ping=True,
        # A database that stops answering fails the call instead of hanging it.
        connect_args={"connect_timeout": 10, "options": "-c statement_timeout=30000"},
    )


def _retryable(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


class Database:
    """Writes and reads, each a function of a connection run on a worker thread.

    SQLite allows one writer at a time, so writes share one connection (and one thread at
    a time); reads use a pool beside it. PostgreSQL uses one pool for both.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = driver_url(url).startswith("sqlite")
        if self.is_sqlite:
            self.writer = create_engine(url, pool_size=1, writer=True)
            self.reader = create_engine(url, pool_size=SQLITE_READERS)
            self._write_slots = anyio.CapacityLimiter(1)
            self._read_slots = anyio.CapacityLimiter(SQLITE_READERS)
        else:
            self.writer = self.reader = create_engine(url, pool_size=POSTGRES_POOL)
            self._write_slots = self._read_slots = anyio.CapacityLimiter(POSTGRES_POOL)

    async def write(self, work: Callable[[Connection], T]) -> T:
        """Runs `work` in one transaction, committed when it returns (rolled back if it
        raises). The caller waits for the commit even if it is cancelled meanwhile. `work`
        runs again after a deadlock or serialization failure, so it must do nothing but SQL."""

        def transaction() -> T:
            backoff = Backoff(TRANSACTION_FIRST_RETRY_S, TRANSACTION_MAX_RETRY_S, jitter=1.0)
            for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
                try:
                    with self.writer.begin() as conn:
                        return work(conn)
                except DBAPIError as exc:
                    if attempt == TRANSACTION_ATTEMPTS or not _retryable(exc):
                        raise
                    log.info("transaction retried (attempt %d): %s", attempt, exc.orig)
                    time.sleep(backoff.next_delay_s())
            raise AssertionError("unreachable")

        return await anyio.to_thread.run_sync(transaction, limiter=self._write_slots)

    async def read(self, work: Callable[[Connection], T]) -> T:
        def session() -> T:
            with self.reader.connect() as conn:
                return work(conn)

        return await anyio.to_thread.run_sync(session, limiter=self._read_slots)

    async def ping(self) -> None:
        await self.read(lambda conn: conn.execute(text("SELECT 1")))

    async def dispose(self) -> None:
        await anyio.to_thread.run_sync(self.writer.dispose)
        if self.reader is not self.writer:
            await anyio.to_thread.run_sync(self.reader.dispose)
