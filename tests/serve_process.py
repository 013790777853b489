"""`taskbeat serve` as a child process on a loopback port, for tests that drive the whole
stack as a user does (the fixtures `serve_env` and `start_server` in conftest.py use it)."""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One `taskbeat serve` child process."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("ab")
        command = [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=self._log)

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"serve not ready: {self.log_path.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._log.close()
        return code


def run_heartbeats(env: dict[str, str], redis_url: str) -> subprocess.CompletedProcess[str]:
    """`taskbeat heartbeats --redis-url …` as a monitor runs it, beside a served process."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "heartbeats", "--redis-url", redis_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def assert_clean_stop(server: Server) -> None:
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells the signal.
    assert server.stop() in (0, -signal.SIGTERM)
    log = server.log_path.read_text()
    assert "Application shutdown complete" in log
    assert "Traceback" not in log
