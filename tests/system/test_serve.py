"""`taskbeat serve` as a real process on a loopback port: the whole HTTP stack, a restart
after SIGKILL, and the embedded Redis of the zero-setup default."""

import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import FINISHED, eventually
from serve_process import assert_clean_stop

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
async def http(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def test_serve_answers_over_loopback(start_server: Any, http: httpx.AsyncClient) -> None:
    server = start_server()
    created = await http.post(
        f"{server.url}/v1/tasks", json={"algorithm": "hello", "input": {"duration_ms": 200}}
    )
    assert created.status_code == 202
    task_url = server.url + created.headers["location"]

    async def finished() -> dict[str, Any] | None:
        task: dict[str, Any] = (await http.get(task_url)).json()
        return task if task["status"] in FINISHED else None

    task = await eventually(finished)
    assert task["status"] == "succeeded"
    assert task["result"] == {"output": "hello world"}
    assert (await http.get(f"{server.url}/docs")).status_code == 200
    assert_clean_stop(server)


async def test_streamed_body_over_the_limit_is_413(
    start_server: Any, http: httpx.AsyncClient
) -> None:
    server = start_server(TASKBEAT_MAX_BODY_BYTES="4096")

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"algorithm": "hello", "input": {"output": "'
        for _ in range(10):
            yield b"x" * 1024
        yield b'"}}'

    response = await http.post(
        f"{server.url}/v1/tasks", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    listed = (await http.get(f"{server.url}/v1/tasks")).json()
    assert listed["items"] == []


async def test_restart_after_sigkill_finishes_every_task_once(
    start_server: Any, http: httpx.AsyncClient
) -> None:
    first = start_server(TASKBEAT_MAX_ACTIVE="5")
    ids = []
    for _ in range(10):
        response = await http.post(
            f"{first.url}/v1/tasks", json={"algorithm": "hello", "input": {"duration_ms": 1500}}
        )
        ids.append(response.json()["task_id"])

    async def some_running() -> bool:
        page = (await http.get(f"{first.url}/v1/tasks", params={"status": "running"})).json()
        return len(page["items"]) == 5

    await eventually(some_running)
    running_at_kill = {
        item["task_id"]
        for item in (await http.get(f"{first.url}/v1/tasks", params={"status": "running"})).json()[
            "items"
        ]
    }
    first.stop(signal.SIGKILL)

    second = start_server()

    async def all_finished() -> list[dict[str, Any]] | None:
        tasks = [(await http.get(f"{second.url}/v1/tasks/{i}")).json() for i in ids]
        return tasks if all(t["status"] in FINISHED for t in tasks) else None

    tasks = await eventually(all_finished, timeout_s=30, interval_s=0.2)
    assert [t["status"] for t in tasks] == ["succeeded"] * 10
    for task in tasks:
        expected_attempt = 2 if task["task_id"] in running_at_kill else 1
        assert task["attempt"] == expected_attempt, task
    stats = (await http.get(f"{second.url}/v1/stats")).json()
    assert stats["totals"]["succeeded"] == 10

    async def counts_zero() -> bool:
        # Counts drop right after a run's final write, and the dead replica's share once
        # the sweeper sees it silent: both within moments, not at the same instant.
        return bool((await http.get(f"{second.url}/v1/stats")).json()["active"] == {"hello": 0})

    await eventually(counts_zero)


def test_embedded_redis_is_started_and_stopped(start_server: Any) -> None:
    server = start_server(TASKBEAT_REDIS_URL="")
    assert httpx.get(f"{server.url}/readyz").json()["redis"] == "ok"
    children = [pid for pid, name in _children(server.process.pid) if name == "redis-server"]
    assert len(children) == 1
    assert_clean_stop(server)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{children[0]}").exists():
        assert time.monotonic() < deadline, "embedded redis-server outlived the service"
        time.sleep(0.05)


def _children(parent: int) -> list[tuple[int, str]]:
    """(pid, command name) of the processes whose parent is `parent`."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_file.read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append((int(stat_file.parent.name), name))
    return found
