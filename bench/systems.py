"""The systems under test, each started fresh on loopback and stopped by PID afterwards:
taskbeat (SQLite + embedded Redis, SQLite + a Redis, PostgreSQL + a Redis), the bare
FastAPI ceiling, and FastAPI + SAQ / FastAPI + arq with their workers."""

import asyncio
import contextlib
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import ROOT, VAR, Proc, free_port, running, start_redis, wait_http

SERVICE_BIN = ROOT / ".venv" / "bin" / "taskbeat"
BENCH_PYTHON = ROOT / ".venv" / "bin" / "python"
PEERS_BIN = VAR / "peers-venv" / "bin"
# The same uvicorn settings everywhere: one worker, uvloop + httptools, no access log.
LOG_LEVEL = "warning"


@dataclass
class System:
    """A started system: where to send creates, and the processes that make it up."""

    name: str
    base_url: str
    procs: list[Proc] = field(default_factory=list)
    redis_url: str | None = None
    service_pid: int | None = None

    @property
    def create_url(self) -> str:
        return f"{self.base_url}/v1/tasks"


def _uvicorn(python: Path, app: str, port: int) -> list[str]:
    return [
        str(python), "-m", "uvicorn", app,
        "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools",
        "--log-level", LOG_LEVEL, "--no-access-log",
    ]  # fmt: skip


@contextlib.contextmanager
def ceiling() -> Iterator[System]:
    port = free_port()
    proc = Proc("ceiling", _uvicorn(BENCH_PYTHON, "bench.ceiling:app", port))
    with running(proc):
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        yield System("ceiling", f"http://127.0.0.1:{port}", [proc], service_pid=proc.pid)


def _sqlite_url(tag: str) -> tuple[str, Path]:
    path = VAR / f"taskbeat-{tag}-{secrets.token_hex(3)}.db"
    return f"sqlite:///{path}", path


@contextlib.contextmanager
def taskbeat(
    name: str,
    *,
    database_url: str | None = None,
    own_redis: bool = True,
    env: dict[str, str] | None = None,
    redis_trips: Path | None = None,
) -> Iterator[System]:
    """The service from `.venv/bin/taskbeat serve`, on a fresh SQLite file unless a
    database URL is given, with its own redis-server unless `own_redis` is False (then
    it starts its embedded one). With `redis_trips`, it runs under bench.counted_serve,
    which writes its Redis round trips there when it exits."""
    procs: list[Proc] = []
    sqlite_path: Path | None = None
    if database_url is None:
        database_url, sqlite_path = _sqlite_url(name)
    redis_url = None
    if own_redis:
        redis_proc, redis_url = start_redis(f"{name}-redis")
        procs.append(redis_proc)
    port = free_port()
    service_env = {
        "TASKBEAT_DATABASE_URL": database_url,
        "TASKBEAT_REDIS_URL": redis_url or "",
        "TASKBEAT_LOG_LEVEL": LOG_LEVEL,
        "TASKBEAT_SHUTDOWN_GRACE_S": "0",
        **(env or {}),
    }
    try:
        serve = [str(SERVICE_BIN)]
        if redis_trips is not None:
            serve = [str(BENCH_PYTHON), "-m", "bench.counted_serve"]
            service_env["BENCH_REDIS_TRIPS"] = str(redis_trips)
        service = Proc(name, [*serve, "serve", "--port", str(port)], env=service_env)
        procs.append(service)
        with running(*procs):
            base_url = f"http://127.0.0.1:{port}"
            wait_http(f"{base_url}/readyz", service)
            yield System(name, base_url, procs, redis_url, service.pid)
    finally:
        if sqlite_path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)


@contextlib.contextmanager
def peer(kind: str) -> Iterator[System]:
    """FastAPI + SAQ or FastAPI + arq: its Redis, its app, its worker in its own process."""
    redis_proc, redis_url = start_redis(f"{kind}-redis")
    port = free_port()
    env = {"BENCH_REDIS_URL": redis_url}
    python = PEERS_BIN / "python"
    app = Proc(f"{kind}-app", _uvicorn(python, f"bench.peers.{kind}_app:app", port), env=env)
    if kind == "saq":
        worker_command = [str(PEERS_BIN / "saq"), "bench.peers.saq_app.settings", "--quiet"]
    else:
        worker_command = [
            str(PEERS_BIN / "arq"),
            "bench.peers.arq_app.WorkerSettings",
            "--custom-log-dict",
            "bench.peers.arq_app.LOG_CONFIG",
        ]
    worker = Proc(f"{kind}-worker", worker_command, env=env)
    with running(redis_proc, app, worker):
        base_url = f"http://127.0.0.1:{port}"
        wait_http(f"{base_url}/healthz", app)
        yield System(f"FastAPI + {kind}", base_url, [redis_proc, app, worker], redis_url)


def peers_available() -> bool:
    return (PEERS_BIN / "saq").exists() and (PEERS_BIN / "arq").exists()


# ----- PostgreSQL: a database of our own on the machine's server, dropped afterwards ------


async def _pg_execute(admin_url: str, statement: str) -> None:
    import asyncpg

    connection = await asyncio.wait_for(asyncpg.connect(admin_url), timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str | None]:
    """Yields the URL of a fresh database, or None when PostgreSQL cannot be reached."""
    name = f"taskbeat_bench_{secrets.token_hex(4)}"
    try:
        asyncio.run(_pg_execute(admin_url, f'CREATE DATABASE "{name}"'))
    except Exception:
        yield None
        return
    try:
        base, _, _ = admin_url.rpartition("/")
        yield f"{base}/{name}"
    finally:
        with contextlib.suppress(Exception):
            asyncio.run(_pg_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def clean_var() -> None:
    """Removes what an interrupted earlier run may have left (never the peers' venv)."""
    for path in VAR.glob("*-data"):
        shutil.rmtree(path, ignore_errors=True)
    for path in VAR.glob("taskbeat-*.db*"):
        path.unlink(missing_ok=True)
