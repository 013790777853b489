"""Delayed starts: `run_at` or `delay_s` on create; the task waits pending, showing its
run_at, and starts within 1 s after it, never before."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from conftest import AppClient
from helpers import wait_for

pytestmark = pytest.mark.anyio
LATE_S = 1.0  # the most a delayed task may start after its run_at


def parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


async def post(client: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    body = {"algorithm": "hello", "input": {"duration_ms": 50}, **fields}
    return await client.post("/v1/tasks", json=body)


async def assert_starts_on_time(client: httpx.AsyncClient, created: dict[str, Any]) -> None:
    assert created["status"] == "pending"
    run_at = parse(created["run_at"])
    assert created["next_attempt_at"] == created["run_at"]
    task = await wait_for(client, created["task_id"], timeout_s=5)
    assert task["status"] == "succeeded", task
    started = parse(task["started_at"])
    assert run_at <= started <= run_at + timedelta(seconds=LATE_S), (run_at, started)
    assert task["run_at"] == created["run_at"]  # it stays as asked
    assert task["next_attempt_at"] is None


async def test_delay_s_starts_the_task_within_a_second_after_it(client: httpx.AsyncClient) -> None:
    response = await post(client, delay_s=1.5)
    assert response.status_code == 202, response.text
    created = response.json()
    delay = parse(created["run_at"]) - parse(created["created_at"])
    assert delay == timedelta(seconds=1.5)
    await assert_starts_on_time(client, created)


async def test_run_at_with_an_offset_starts_the_task_then(client: httpx.AsyncClient) -> None:
    at = datetime.now(UTC) + timedelta(seconds=1.2)
    local = (at + timedelta(hours=2)).replace(tzinfo=None).isoformat()
    response = await post(client, run_at=local + "+02:00")
    assert response.status_code == 202, response.text
    created = response.json()
    assert abs(parse(created["run_at"]) - at) < timedelta(milliseconds=1)
    await assert_starts_on_time(client, created)


async def test_a_delayed_task_waits_even_with_free_slots(app_client: AppClient) -> None:
    async with app_client(max_active=4) as client:
        response = await post(client, delay_s=2)
        created = response.json()
        assert created["status"] == "pending"
        assert created["attempt"] == 0
        page = (await client.get("/v1/tasks", params={"status": "pending"})).json()
        assert [task["task_id"] for task in page["items"]] == [created["task_id"]]
        await assert_starts_on_time(client, created)


async def test_a_run_at_in_the_past_starts_now(client: httpx.AsyncClient) -> None:
    response = await post(client, run_at="2001-02-03T04:05:06+00:00")
    assert response.status_code == 202, response.text
    created = response.json()
    assert parse(created["run_at"]) == parse(created["created_at"])
    task = await wait_for(client, created["task_id"], timeout_s=3)
    assert task["status"] == "succeeded"


async def test_a_task_without_a_start_time_has_no_run_at(client: httpx.AsyncClient) -> None:
    created = (await post(client)).json()
    assert created["run_at"] is None


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"run_at": "2030-01-01T00:00:00+00:00", "delay_s": 5}, "not both"),
        ({"run_at": "2030-01-01T00:00:00"}, "timezone"),
        ({"run_at": "tomorrow"}, "run_at"),
        ({"run_at": 1893456000}, "ISO-8601"),
        ({"run_at": "9999-12-31T23:59:59-23:59"}, "at most"),
        ({"delay_s": 0}, "greater than 0"),
        ({"delay_s": -1}, "greater than 0"),
        ({"delay_s": 10**12}, "less than or equal"),
        ({"delay_s": "5"}, "valid number"),
        ({"delay_s": True}, "valid number"),
    ],
)
async def test_bad_start_times_are_422(
    client: httpx.AsyncClient, fields: dict[str, Any], says: str
) -> None:
    response = await post(client, **fields)
    assert response.status_code == 422, response.text
    assert says in response.json()["error"]["message"]
    assert (await client.get("/v1/tasks")).json()["items"] == []


async def test_it_starts_on_time_after_the_replica_restarted(app_client: AppClient) -> None:
    async with app_client() as client:
        created = (await post(client, delay_s=2.5)).json()
    async with app_client() as client:
        await assert_starts_on_time(client, created)
