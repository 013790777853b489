"""The embedded Redis of `taskbeat serve` has a known address beside the database file, so
`taskbeat heartbeats` (and redis-cli) run from the same directory find it with no flags."""

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_process import free_port

pytestmark = pytest.mark.slow

LONG_TASK = {"algorithm": "hello", "input": {"duration_ms": 120000}}


def _plain_env() -> dict[str, str]:
    """The environment with no TASKBEAT_* at all: the embedded defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TASKBEAT_")}


def _heartbeats(workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "heartbeats"],
        cwd=workdir,
        env=_plain_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


class Serve:
    """`taskbeat serve` on the embedded defaults, run from `workdir`."""

    def __init__(self, workdir: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = workdir / "serve.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--port", self.url.rsplit(":", 1)[1]],
                cwd=workdir,
                env=_plain_env(),
                stdout=log,
                stderr=log,
            )

    def ready(self, timeout_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            try:
                answer = httpx.get(f"{self.url}/readyz", timeout=1)
                if answer.status_code == 200:
                    body: dict[str, Any] = answer.json()
                    return body
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not ready: {self.log_path.read_text()[-3000:]}")

    def stop(self, sig: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.process.wait(timeout=30)


def _wait(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_heartbeats_beside_serve_on_embedded_defaults(tmp_path: Path) -> None:
    socket_path = tmp_path / "var" / "redis.sock"
    serve = Serve(tmp_path)
    try:
        ready = serve.ready()
        assert ready["embedded_redis"] == f"unix://{socket_path}"
        assert f"embedded Redis at unix://{socket_path}" in serve.log_path.read_text()
        mode = socket_path.stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert mode & 0o077 == 0, oct(mode)  # the owner's only

        task_id = httpx.post(f"{serve.url}/v1/tasks", json=LONG_TASK).json()["task_id"]
        _wait(
            lambda: httpx.get(f"{serve.url}/v1/tasks/{task_id}").json()["status"] == "running",
            20,
            "the task to run",
        )
        beats = _wait(lambda: (r := _heartbeats(tmp_path)) and task_id in r.stdout and r, 20, "hb")
        assert beats.returncode == 0, beats.stderr
        assert "OK: 1 task running" in beats.stdout

        redis_cli = shutil.which("redis-cli")
        if redis_cli is not None:  # the one documented flag: -s var/redis.sock
            listed = subprocess.run(
                [redis_cli, "-s", "var/redis.sock", "ZRANGE", "taskbeat:heartbeats", "0", "-1"],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
            assert task_id in listed.stdout

        serve.stop(signal.SIGKILL)
        _wait(lambda: not socket_path.exists(), 10, "the embedded Redis to die with the service")
        for _ in range(2):  # stale, and stays so until the next start
            orphaned = _heartbeats(tmp_path)
            assert orphaned.returncode == 2, (orphaned.stdout, orphaned.stderr)
            assert task_id in orphaned.stdout
            assert "STALE: no `taskbeat serve` is running here" in orphaned.stdout
            time.sleep(1)

        serve = Serve(tmp_path)
        serve.ready()
        # The new service moves the task on (its old lease lapses) and beats for it again.
        again = _wait(
            lambda: (r := _heartbeats(tmp_path)).returncode == 0 and task_id in r.stdout and r,
            30,
            "the restarted service to beat for the task",
        )
        assert "OK: 1 task running" in again.stdout
        httpx.post(f"{serve.url}/v1/tasks/{task_id}/cancel")
    finally:
        serve.stop(signal.SIGTERM)
    assert not socket_path.exists(), "a clean stop leaves no socket behind"
    gone = _heartbeats(tmp_path)
    assert gone.returncode == 3
    assert "no `taskbeat serve` is running here" in gone.stderr


def test_a_second_serve_on_the_same_socket_is_refused(tmp_path: Path) -> None:
    first = Serve(tmp_path)
    try:
        first.ready()
        second = Serve(tmp_path)
        second.process.wait(timeout=30)
        assert second.process.returncode != 0
        assert "another server already listens on" in second.log_path.read_text()
        assert first.ready()["status"] == "ready"
    finally:
        first.stop(signal.SIGTERM)
