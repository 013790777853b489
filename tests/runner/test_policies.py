"""Algorithm policies as users see them: priorities, retries with backoff and /attempts,
pause and resume, changes in force on every replica, and the one queue across replicas."""

import itertools
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from conftest import AppClient
from helpers import create, eventually, wait_for
from servers import Engine, serve

pytestmark = pytest.mark.anyio


async def patch(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.patch("/v1/algorithms/hello", json=fields)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def create_with(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/tasks", json={"algorithm": "hello", **body})
    assert response.status_code == 202, response.text
    return dict(response.json())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_the_highest_priority_due_task_starts_next(app_client: AppClient) -> None:
    async with app_client() as client:
        await patch(client, max_active=1)
        first = await create(client, duration_ms=300)
        low = [
            await create_with(client, {"input": {"duration_ms": 50}, "priority": 1})
            for _ in range(4)
        ]
        high = await create_with(client, {"input": {"duration_ms": 50}, "priority": 9})
        assert high["priority"] == 9
        assert high["status"] == "pending"
        await wait_for(client, first["task_id"])
        done_high = await wait_for(client, high["task_id"])
        for task in low:
            done = await wait_for(client, task["task_id"])
            assert at(done["started_at"]) >= at(done_high["started_at"])


async def test_failed_attempts_are_retried_with_backoff_and_listed(app_client: AppClient) -> None:
    async with app_client() as client:
        await patch(client, max_attempts=3, retry_base_s=0.4, retry_max_s=5)
        task = await create(client, duration_ms=20, fail_attempts=2)
        done = await wait_for(client, task["task_id"], timeout_s=15)
        assert (done["status"], done["attempt"], done["max_attempts"]) == ("succeeded", 3, 3)
        attempts = (await client.get(f"/v1/tasks/{task['task_id']}/attempts")).json()["items"]
        assert [a["attempt"] for a in attempts] == [1, 2, 3]
        assert [a["status"] for a in attempts] == ["failed", "failed", "succeeded"]
        assert "attempt 1" in attempts[0]["error"]
        assert "attempt 2" in attempts[1]["error"]
        assert all(a["replica"] for a in attempts)
        # retry_base_s * 2^(n-1), less the 25 % jitter
        for n, (before, after) in enumerate(itertools.pairwise(attempts), start=1):
            gap_s = (at(after["started_at"]) - at(before["finished_at"])).total_seconds()
            assert gap_s >= 0.4 * 2 ** (n - 1) * 0.75


async def test_a_task_waiting_for_a_retry_says_when(app_client: AppClient) -> None:
    async with app_client() as client:
        await patch(client, max_attempts=2, retry_base_s=3, retry_max_s=3)
        task = await create(client, duration_ms=10, fail_attempts=1)

        async def waiting() -> dict[str, Any] | None:
            shown = (await client.get(f"/v1/tasks/{task['task_id']}")).json()
            return shown if shown["next_attempt_at"] else None

        shown = await eventually(waiting)
        assert shown["status"] == "pending"
        assert "attempt 1" in shown["error"]


async def test_retries_stop_at_max_attempts_and_retry_on(app_client: AppClient) -> None:
    async with app_client() as client:
        await patch(client, max_attempts=3, retry_base_s=0.1, retry_max_s=0.2)
        always = await create(client, duration_ms=10, fail_attempts=5)
        done = await wait_for(client, always["task_id"], timeout_s=15)
        assert (done["status"], done["attempt"]) == ("failed", 3)
        assert "attempt 3" in done["error"]

        await patch(client, retry_on=[])
        once = await create(client, duration_ms=10, fail_attempts=5)
        done = await wait_for(client, once["task_id"])
        assert (done["status"], done["attempt"]) == ("failed", 1)


async def test_a_policy_and_an_engine_declared_in_the_config_file_are_in_force(
    app_client: AppClient, tmp_path: Path
) -> None:
    engine = Engine()
    async with serve(engine.app()) as url:
        config = tmp_path / "taskbeat.toml"
        config.write_text(
            "[algorithms.hello]\nmax_active = 2\npriority = 6\n\n"
            "[algorithms.engine]\nmax_attempts = 3\nretry_base_s = 0.1\n\n"
            f'[[remote_algorithms]]\nname = "engine"\nsubmit_url = "{url}/jobs"\n'
            f'result_url = "{url}/jobs/{{job_id}}"\n'
        )
        async with app_client(config_file=config, poll_interval_s=0.1) as client:
            hello = (await client.get("/v1/algorithms/hello")).json()
            assert (hello["max_active"], hello["priority"]) == (2, 6)
            # An input the engine refuses at submit is failed at once, never retried.
            refused = await create_with(client, {"algorithm": "engine", "input": {"refuse": 1}})
            done = await wait_for(client, refused["task_id"])
            assert (done["status"], done["attempt"]) == ("failed", 1)
            assert done["error"].startswith("input refused")
            # A failure the engine reports is retried up to the file's max_attempts.
            failing = await create_with(client, {"algorithm": "engine", "input": {}})
            for attempt in (1, 2, 3):
                await eventually(partial(_job_submitted, engine, failing["task_id"], attempt))
                latest = [
                    job for job in engine.jobs.values() if job["task_id"] == failing["task_id"]
                ]
                latest[-1].update(state="failed", error=f"boom {attempt}")
            done = await wait_for(client, failing["task_id"])
            assert (done["status"], done["attempt"], done["error"]) == ("failed", 3, "boom 3")


async def _job_submitted(engine: Engine, task_id: str, times: int) -> bool:
    return sum(body["task_id"] == task_id for body in engine.submitted) >= times


async def test_pause_holds_every_start_until_resume(app_client: AppClient) -> None:
    async with app_client() as replica_a, app_client() as replica_b:
        assert (await replica_a.post("/v1/algorithms/hello/pause")).json()["paused"] is True
        tasks = [
            await create(replica, duration_ms=20)
            for replica in (replica_a, replica_b)
            for _ in range(5)
        ]
        await anyio.sleep(3)
        for task in tasks:
            shown = (await replica_b.get(f"/v1/tasks/{task['task_id']}")).json()
            assert (shown["status"], shown["paused"]) == ("pending", True)
        assert (await replica_b.post("/v1/algorithms/hello/resume")).json()["paused"] is False
        for task in tasks:
            assert (await wait_for(replica_a, task["task_id"]))["status"] == "succeeded"


async def test_a_timed_pause_resumes_by_itself(client: httpx.AsyncClient) -> None:
    paused = await client.post("/v1/algorithms/hello/pause", json={"for_s": 2})
    assert paused.json()["paused"] is True
    assert paused.json()["paused_until"]
    started = time.monotonic()
    task = await create(client, duration_ms=20)
    done = await wait_for(client, task["task_id"], timeout_s=10)
    assert done["status"] == "succeeded"
    assert time.monotonic() - started >= 1.5


async def test_a_change_on_one_replica_is_in_force_on_another_within_a_second(
    app_client: AppClient,
) -> None:
    async with app_client() as replica_a, app_client() as replica_b:
        changed = time.monotonic()
        await patch(replica_a, timeout_s=77, priority=4)

        async def seen() -> bool:
            task = await create(replica_b, duration_ms=10)
            return (task["timeout_s"], task["priority"]) == (77, 4)

        await eventually(seen, timeout_s=1.0, interval_s=0.05)
        assert time.monotonic() - changed < 1.0
        shown = (await replica_b.get("/v1/algorithms/hello")).json()
        assert (shown["timeout_s"], shown["priority"]) == (77, 4)
        # null puts a field back to its configured value
        assert (await patch(replica_b, timeout_s=None))["timeout_s"] == 3600


async def test_bad_policy_values_are_422_naming_the_field_and_unknown_is_404(
    client: httpx.AsyncClient,
) -> None:
    for body, field in [
        ({"max_active": 0}, "max_active"),
        ({"priority": 10}, "priority"),
        ({"retry_on": ["never"]}, "retry_on"),
        ({"max_waiting": "3"}, "max_waiting"),
        ({"colour": "red"}, "colour"),
    ]:
        response = await client.patch("/v1/algorithms/hello", json=body)
        assert response.status_code == 422, (body, response.text)
        assert field in response.json()["error"]["message"]
    assert (await client.patch("/v1/algorithms/nope", json={"max_active": 1})).status_code == 404
    assert (await client.post("/v1/algorithms/nope/pause")).status_code == 404
    bad_pause = await client.post("/v1/algorithms/hello/pause", json={"for_s": -1})
    assert bad_pause.status_code == 422


async def test_a_backlog_created_on_one_replica_is_run_by_an_idle_one(
    app_client: AppClient,
) -> None:
    async with app_client(max_active=1) as busy, app_client() as idle:
        tasks = [await create(busy, duration_ms=300) for _ in range(4)]
        done = [await wait_for(idle, task["task_id"]) for task in tasks]
        idle_id = idle.app.state.context.replica_id  # type: ignore[attr-defined]
        runners = set()
        for task in done:
            attempts = (await idle.get(f"/v1/tasks/{task['task_id']}/attempts")).json()["items"]
            runners.add(attempts[-1]["replica"])
        assert idle_id in runners
