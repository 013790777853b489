"""/v1/schedules as a client sees it: create (201, 409, 422 naming the field), read with the
next tick and the tasks made, change, pause, resume, delete; tasks list by schedule."""

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import httpx
import pytest

pytestmark = pytest.mark.anyio
BODY: dict[str, Any] = {
    "name": "nightly",
    "algorithm": "hello",
    "input": {"duration_ms": 10},
    "cron": "0 3 * * *",
    "timezone": "Europe/Berlin",
}


async def post(client: httpx.AsyncClient, **changes: Any) -> httpx.Response:
    return await client.post("/v1/schedules", json={**BODY, **changes})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_a_schedule_is_created_read_listed_and_deleted(client: httpx.AsyncClient) -> None:
    response = await post(client)
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == "/v1/schedules/nightly"
    created = response.json()
    assert created["overlap"] == "skip"
    assert created["catchup_s"] == 0
    assert created["paused"] is False
    assert created["priority"] is None
    next_fire = at(created["next_fire_at"])
    berlin = next_fire.astimezone(ZoneInfo("Europe/Berlin"))
    assert (berlin.hour, berlin.minute, berlin.second) == (3, 0, 0)
    assert timedelta(0) < next_fire - at(created["created_at"]) <= timedelta(days=1)

    shown = (await client.get("/v1/schedules/nightly")).json()
    assert shown["recent_tasks"] == []
    assert shown["next_fire_at"] == created["next_fire_at"]
    listed = (await client.get("/v1/schedules")).json()["items"]
    assert [item["name"] for item in listed] == ["nightly"]

    assert (await post(client)).status_code == 409
    deleted = await client.delete("/v1/schedules/nightly")
    assert deleted.status_code == 204
    assert (await client.get("/v1/schedules/nightly")).status_code == 404
    assert (await client.delete("/v1/schedules/nightly")).status_code == 404
    assert (await client.patch("/v1/schedules/nightly", json={"paused": True})).status_code == 404


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * *"}, "cron"),
        ({"cron": "@every 0s"}, "cron"),
        ({"cron": "@every soon"}, "cron"),
        ({"cron": "@fortnightly"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"overlap": "queue"}, "overlap"),
        ({"catchup_s": -1}, "catchup_s"),
        ({"priority": 10}, "priority"),
        ({"name": "no spaces"}, "name"),
        ({"algorithm": "nope"}, "algorithm"),
        ({"input": {"duration_ms": "long"}}, "duration_ms"),
    ],
)
async def test_a_bad_field_is_422_naming_it(
    client: httpx.AsyncClient, changes: dict[str, Any], field: str
) -> None:
    response = await post(client, **changes)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["message"]


async def test_change_pause_and_resume(client: httpx.AsyncClient) -> None:
    assert (await post(client)).status_code == 201
    changed = await client.patch(
        "/v1/schedules/nightly", json={"cron": "@every 5m", "priority": 7, "overlap": "allow"}
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["cron"], body["priority"], body["overlap"]) == ("@every 5m", 7, "allow")
    assert at(body["next_fire_at"]).timestamp() % 300 == 0
    bad = await client.patch("/v1/schedules/nightly", json={"timezone": "Nowhere/At_All"})
    assert bad.status_code == 422
    assert "timezone" in bad.json()["error"]["message"]
    renamed = await client.patch("/v1/schedules/nightly", json={"name": "daily"})
    assert renamed.status_code == 422
    paused = (await client.post("/v1/schedules/nightly/pause")).json()
    assert paused["paused"] is True
    assert paused["next_fire_at"] is None
    resumed = (await client.post("/v1/schedules/nightly/resume")).json()
    assert resumed["paused"] is False
    assert resumed["next_fire_at"] is not None
    reset = (await client.patch("/v1/schedules/nightly", json={"priority": None})).json()
    assert reset["priority"] is None


async def test_every_second_fires_tasks_listed_by_schedule(client: httpx.AsyncClient) -> None:
    response = await post(client, name="often", cron="@every 1s", overlap="allow", priority=4)
    assert response.status_code == 201
    with anyio.fail_after(10):
        while True:
            page = (await client.get("/v1/tasks", params={"schedule": "often"})).json()
            if len(page["items"]) >= 2:
                break
            await anyio.sleep(0.1)
    for task in page["items"]:
        assert task["schedule"] == "often"
        assert task["priority"] == 4
        assert at(task["scheduled_for"]).microsecond == 0
    other = (await client.get("/v1/tasks", params={"schedule": "nightly"})).json()
    assert other["items"] == []
    shown = (await client.get("/v1/schedules/often")).json()
    made = {task["task_id"] for task in shown["recent_tasks"]}
    assert {task["task_id"] for task in page["items"]} <= made
    assert shown["last_tick_at"] is not None


async def test_bulk_cancel_by_schedule_takes_only_its_tasks(client: httpx.AsyncClient) -> None:
    other = await client.post("/v1/tasks", json={"algorithm": "hello", "input": {"hang": True}})
    assert other.status_code == 202
    hanging = {"name": "hang", "cron": "@every 1s", "overlap": "allow", "input": {"hang": True}}
    assert (await post(client, **hanging)).status_code == 201
    with anyio.fail_after(10):
        while True:
            page = (await client.get("/v1/tasks", params={"schedule": "hang"})).json()
            if len(page["items"]) >= 2:
                break
            await anyio.sleep(0.1)
    assert (await client.post("/v1/schedules/hang/pause")).status_code == 200
    made = (await client.get("/v1/tasks", params={"schedule": "hang"})).json()["items"]
    answer = await client.post("/v1/bulk/cancel", json={"schedule": "hang"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["matched"] == len(made)
    kept = (await client.get(f"/v1/tasks/{other.json()['task_id']}")).json()
    assert kept["status"] in ("pending", "running")
    await client.post(f"/v1/tasks/{kept['task_id']}/cancel")
