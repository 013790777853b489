"""The embedded redis-server dies with the service, even when the service is SIGKILLed,
and is not tied to the short-lived worker thread that waits for it to start."""

import os
import shutil
import signal
import threading
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis

from app.core.config import Settings
from app.core.redis import EmbeddedRedis, _die_with_parent
from app.replica import _launch_embedded_redis, _redis_url

pytestmark = pytest.mark.slow


def _stat(pid: int) -> tuple[str, str, int, int] | None:
    """(command name, state, parent pid, start time) of `pid`, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat.rsplit(")", 1)[1].split()
    return name, fields[0], int(fields[1]), int(fields[19])


def _alive(pid: int, started: int) -> bool:
    """Whether `pid` is still the same process and not a zombie (nothing may reap it)."""
    stat = _stat(pid)
    return stat is not None and stat[3] == started and stat[1] != "Z"


def _redis_children(parent: int) -> list[tuple[int, int]]:
    """(pid, start time) of the redis-server processes whose parent is `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] == "redis-server" and stat[2] == parent:
                found.append((int(entry.name), stat[3]))
    return found


def _wait_gone(pid: int, started: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _alive(pid, started):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_embedded_redis_dies_when_the_service_is_sigkilled(start_server: Any) -> None:
    server = start_server(TASKBEAT_REDIS_URL="")
    children = _redis_children(server.process.pid)
    assert len(children) == 1, children
    redis_pid, started = children[0]
    try:
        assert _alive(redis_pid, started)
        server.stop(signal.SIGKILL)
        assert _wait_gone(redis_pid, started, timeout_s=5), (
            f"embedded redis-server {redis_pid} outlived the SIGKILLed service"
        )
    finally:
        if _alive(redis_pid, started):
            os.kill(redis_pid, signal.SIGKILL)


def test_embedded_redis_outlives_the_worker_threads(tmp_path: Path) -> None:
    """The kernel sends the parent-death signal when the *thread* that forked the child
    exits; the service must not fork redis-server on an anyio worker thread."""
    settings = Settings(
        _env_file=None, database_url=f"sqlite:///{tmp_path / 'taskbeat.db'}", redis_url=""
    )
    stack = AsyncExitStack()

    async def start() -> str:
        # as running_replica does: forked on the loop's thread, waited for on a worker
        return await _redis_url(settings, _launch_embedded_redis(settings, stack))

    url = anyio.run(start)
    try:
        # anyio.run stopped its worker threads as it returned; give them time to exit.
        deadline = time.monotonic() + 5
        while any(t.name == "AnyIO worker thread" for t in threading.enumerate()):
            assert time.monotonic() < deadline, "anyio worker threads did not exit"
            time.sleep(0.05)
        time.sleep(0.5)
        client = redis.Redis.from_url(url, socket_timeout=2)
        try:
            assert client.ping()
        finally:
            client.close()
    finally:
        anyio.run(stack.aclose)


def test_stop_ends_redis_server_itself() -> None:
    """setpriv execs redis-server in place, so the pid `stop()` signals is redis-server's."""
    embedded = EmbeddedRedis()
    embedded.start()
    try:
        process = embedded._process
        assert process is not None
        stat = _stat(process.pid)
        assert stat is not None
        assert stat[0] == "redis-server", stat
    finally:
        embedded.stop()
    assert not _alive(process.pid, stat[3])


def test_without_setpriv_redis_server_is_run_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert _die_with_parent(["redis-server", "--port", "0"]) == ["redis-server", "--port", "0"]
