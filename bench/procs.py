"""Processes the bench starts: a redis-server, the service, the ceiling app, the peers.

Every process is started here, remembered by its PID, and stopped by that PID (SIGTERM,
then SIGKILL after a bounded wait), together with any children it left behind.
"""

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench"
LOGS = VAR / "logs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Proc:
    """A child process with its log file; `stop()` ends it and its descendants."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOGS / f"{name}.log"
        self._log = self.log_path.open("ab")
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.popen = subprocess.Popen(
            list(command), env=full_env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, *, timeout_s: float = 30.0) -> None:
        children: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(self.pid).children(recursive=True)
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        for child in children:  # e.g. an embedded redis-server orphaned by a kill
            with contextlib.suppress(psutil.Error):
                child.terminate()
                child.wait(timeout=5)
        self._log.close()


def wait_http(url: str, proc: Proc, *, timeout_s: float = 60.0) -> None:
    """Waits until GET url answers 200; raises with the log tail if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready at {url} after {timeout_s} s:\n{proc.tail()}")


def wait_port(port: int, proc: Proc, *, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} not listening on {port} after {timeout_s} s")


def start_redis(name: str = "redis") -> tuple[Proc, str]:
    """A private redis-server on a loopback port (the binary the service itself uses)."""
    from app.core.redis import find_redis_server

    port = free_port()
    data_dir = VAR / f"{name}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        find_redis_server(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(data_dir),
        "--loglevel", "warning",
    ]  # fmt: skip
    proc = Proc(name, command)
    wait_port(port, proc)
    return proc, f"redis://127.0.0.1:{port}/0"


@contextlib.contextmanager
def running(*procs: Proc) -> Iterator[None]:
    """Stops the given processes on the way out, whatever happened."""
    try:
        yield
    finally:
        for proc in reversed(procs):
            proc.stop()
