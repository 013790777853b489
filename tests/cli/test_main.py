"""The console script itself: its version, and the progress bar a person sees on a terminal."""

import os
import pty
import select
import subprocess
import sys
import time
from importlib import metadata
from typing import Any

import pytest

from app.native import load_library


def test_version_names_the_package_and_the_c_library() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    expected = f"taskbeat {metadata.version('taskbeat')} (C library API {load_library().version})"
    assert result.stdout.strip() == expected


def on_terminal(env: dict[str, str], *args: str, timeout_s: float = 30) -> tuple[int, str]:
    """Runs the CLI with a pseudo-terminal as its stdout; its exit status and output."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        env={**env, "COLUMNS": "100", "TERM": "xterm"},
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        return process.wait(timeout=max(0.1, deadline - time.monotonic())), output.decode()
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()


@pytest.mark.slow
def test_wait_on_a_terminal_draws_a_progress_bar(
    start_server: Any, serve_env: dict[str, str]
) -> None:
    server = start_server(TASKBEAT_POLL_INTERVAL_S="0.1")
    env = {**serve_env, "TASKBEAT_URL": server.url}
    status, output = on_terminal(
        env, "tasks", "create", "hello", "--input", '{"duration_ms":1500,"steps":5}', "--wait"
    )
    assert status == 0, output
    assert "━" in output  # rich's bar
    assert "%" in output
    assert "running" in output
    assert "succeeded" in output.rsplit("━", 1)[-1]  # the task, printed after the bar
    assert "hello world" in output
