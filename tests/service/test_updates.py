"""Clients that wait: long-poll and Server-Sent Events, on one replica and across two."""

import json
import time
from datetime import datetime
from typing import Any

import anyio
import httpx
import pytest
from conftest import AppClient
from helpers import create, eventually, wait_for
from servers import over_http

pytestmark = pytest.mark.anyio


def hub_of(client: httpx.AsyncClient) -> Any:
    return client.app.state.context.updates  # type: ignore[attr-defined]


def seconds_since(iso: str) -> float:
    return time.time() - datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_wait_answers_as_soon_as_the_task_finishes(client: httpx.AsyncClient) -> None:
    task = await create(client, duration_ms=400)
    started = time.monotonic()
    response = await client.get(f"/v1/tasks/{task['task_id']}/wait", params={"timeout_s": 10})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["result"] == {"output": "hello world"}
    assert seconds_since(body["finished_at"]) < 0.5
    assert time.monotonic() - started < 3
    assert hub_of(client).subscriber_count() == 0


async def test_wait_answers_the_current_task_at_timeout(client: httpx.AsyncClient) -> None:
    task = await create(client, hang=True)
    started = time.monotonic()
    response = await client.get(f"/v1/tasks/{task['task_id']}/wait", params={"timeout_s": 0.3})
    assert response.status_code == 200
    assert response.json()["status"] in ("pending", "running")
    assert 0.3 <= time.monotonic() - started < 2
    await client.post(f"/v1/tasks/{task['task_id']}/cancel")


async def test_wait_refuses_bad_timeouts_and_unknown_ids(client: httpx.AsyncClient) -> None:
    task = await create(client, duration_ms=0)
    for bad in ("0", "-1", "301", "soon"):
        response = await client.get(f"/v1/tasks/{task['task_id']}/wait?timeout_s={bad}")
        assert response.status_code == 422, bad
    response = await client.get("/v1/tasks/nope/wait")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert hub_of(client).subscriber_count() == 0


async def test_wait_on_another_replica_and_cancel_from_elsewhere(app_client: AppClient) -> None:
    async with app_client() as a, app_client() as b:
        done = await create(a, duration_ms=300)
        response = await b.get(f"/v1/tasks/{done['task_id']}/wait", params={"timeout_s": 10})
        assert response.json()["status"] == "succeeded"
        assert seconds_since(response.json()["finished_at"]) < 0.5

        hanging = await create(a, hang=True)
        await wait_for(a, hanging["task_id"], {"running"})
        answers: list[tuple[float, dict[str, Any]]] = []

        async def waiter() -> None:
            reply = await b.get(f"/v1/tasks/{hanging['task_id']}/wait", params={"timeout_s": 20})
            answers.append((time.monotonic(), reply.json()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await eventually(lambda: _true(hub_of(b).subscriber_count(hanging["task_id"]) == 1))
            cancelled_at = time.monotonic()
            await a.post(f"/v1/tasks/{hanging['task_id']}/cancel")
        answered_at, body = answers[0]
        assert body["status"] == "cancelled"
        assert answered_at - cancelled_at < 3
        assert hub_of(b).subscriber_count() == 0


async def _true(value: bool) -> bool:
    return value


def parse_events(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                fields["comment"] = line
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
        if fields:
            events.append(fields)
    return events


async def test_events_stream_in_order_and_end_after_the_final_status(
    app_client: AppClient,
) -> None:
    async with app_client() as client, over_http(client) as http:
        task = await create(http, duration_ms=1200, steps=4)
        with anyio.fail_after(10):
            response = await http.get(f"/v1/tasks/{task['task_id']}/events")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_events(response.text)
    kinds = [event["event"] for event in events]
    assert kinds[-1] == "status"
    assert events[-1]["data"]["status"] == "succeeded"
    assert events[-1]["data"]["result"] == {"output": "hello world"}
    assert "progress" in kinds
    progress = [e["data"]["progress"] for e in events if e["event"] == "progress"]
    assert progress == sorted(progress)
    ids = [int(event["id"]) for event in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
    assert statuses[-1] == "succeeded"
    assert "running" in statuses or statuses[0] == "pending"


async def test_events_resume_after_last_event_id_and_keep_alive(app_client: AppClient) -> None:
    async with app_client(sse_keepalive_s=0.2) as client, over_http(client) as http:
        task = await create(http, hang=True, steps=4)
        task_id = task["task_id"]
        await wait_for(http, task_id, {"running"})
        first: list[dict[str, Any]] = []
        raw: list[str] = []
        with anyio.fail_after(10):
            async with http.stream("GET", f"/v1/tasks/{task_id}/events") as response:
                async for chunk in response.aiter_text():
                    raw.append(chunk)
                    if ": keep-alive" in "".join(raw):
                        break
        first = [e for e in parse_events("".join(raw)) if "id" in e]
        assert first[0]["event"] == "status"
        assert first[0]["data"]["status"] == "running"
        last_id = first[-1]["id"]

        # The client went away: nothing of its stream stays behind.
        await eventually(lambda: _true(hub_of(client).subscriber_count(task_id) == 0))

        await http.post(f"/v1/tasks/{task_id}/cancel")
        await wait_for(http, task_id, {"cancelled"})
        headers = {"Last-Event-ID": last_id}
        with anyio.fail_after(10):
            resumed = await http.get(f"/v1/tasks/{task_id}/events", headers=headers)
        events = [e for e in parse_events(resumed.text) if "id" in e]
        assert [e["data"]["status"] for e in events] == ["cancelled"]
        assert int(events[0]["id"]) > int(last_id)

        # Seen everything: 204 tells an EventSource to stop reconnecting.
        done = await http.get(
            f"/v1/tasks/{task_id}/events", headers={"Last-Event-ID": events[0]["id"]}
        )
        assert done.status_code == 204
        assert hub_of(client).subscriber_count() == 0


async def test_events_of_an_unknown_task_are_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/tasks/nope/events")
    assert response.status_code == 404


async def _progress_events(http: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    with anyio.fail_after(15):
        response = await http.get(f"/v1/tasks/{task_id}/events")
    assert response.status_code == 200, response.text
    events = parse_events(response.text)
    assert events[-1]["data"]["status"] == "succeeded"
    return [event for event in events if event.get("event") == "progress"]


async def test_a_ten_step_task_streams_its_steps_on_its_replica_and_on_another(
    app_client: AppClient,
) -> None:
    # The poll interval stays at its 3 s default: only the library's step notices move it.
    async with (
        app_client() as a,
        app_client() as b,
        over_http(a) as http_a,
        over_http(b) as http_b,
    ):
        task = await create(http_a, duration_ms=1000, steps=10)
        streams: dict[str, list[dict[str, Any]]] = {}

        async def stream(name: str, http: httpx.AsyncClient) -> None:
            streams[name] = await _progress_events(http, task["task_id"])

        async with anyio.create_task_group() as tg:
            tg.start_soon(stream, "owner", http_a)
            tg.start_soon(stream, "other", http_b)
    for name, progress_events in streams.items():
        values = [event["data"]["progress"] for event in progress_events]
        assert len(values) >= 8, (name, values)
        assert values == sorted(set(values)), (name, values)
        assert all(0 < value < 100 for value in values), (name, values)
        ids = [int(event["id"]) for event in progress_events]
        assert ids == sorted(set(ids)), (name, ids)
