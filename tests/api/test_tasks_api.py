"""The REST contract: create, read, list, cancel, and every error answer."""

import time
from typing import Any

import anyio
import httpx
import pytest
from conftest import AppClient
from helpers import create, eventually, wait_for
from sqlalchemy import text

pytestmark = pytest.mark.anyio


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return dict(body["error"])


async def test_a_task_runs_to_hello_world(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/tasks", json={"algorithm": "hello", "input": {"duration_ms": 300}}
    )
    assert response.status_code == 202
    created = response.json()
    assert response.headers["location"] == f"/v1/tasks/{created['task_id']}"
    assert created["status"] in ("pending", "running")  # running: it started at once
    assert created["timeout_s"] == 3600

    task = await wait_for(client, created["task_id"])
    assert task["status"] == "succeeded"
    assert task["result"] == {"output": "hello world"}
    assert task["progress"] == 100
    assert task["attempt"] == 1
    assert task["error"] is None
    assert task["started_at"]
    assert task["finished_at"]
    assert task["heartbeat_at"] is None


async def test_finish_is_noticed_without_waiting_for_the_next_poll(
    client: httpx.AsyncClient,
) -> None:
    # The poll interval is 3 s: a 200 ms job seen as succeeded well before that proves the
    # runner was woken by the library's notification.
    task = await create(client, duration_ms=200)
    started = time.monotonic()
    finished = await wait_for(client, task["task_id"], timeout_s=2.5)
    assert finished["status"] == "succeeded"
    assert time.monotonic() - started < 1.5


async def test_progress_shows_while_running(app_client: AppClient) -> None:
    async with app_client(poll_interval_s=0.1) as client:
        task = await create(client, duration_ms=2000, steps=10)

        async def midway() -> dict[str, Any] | None:
            current = (await client.get(f"/v1/tasks/{task['task_id']}")).json()
            return current if 0 < current["progress"] < 100 else None

        running = await eventually(midway)
        assert running["status"] == "running"
        assert running["heartbeat_at"] is not None
        finished = await wait_for(client, task["task_id"])
        assert finished["progress"] == 100


async def test_unknown_task_is_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/tasks/nope"), 404, "not_found")
    assert_error(await client.post("/v1/tasks/nope/cancel"), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"algorithm": "nope"}, "unknown algorithm"),
        ({"input": {}}, "algorithm"),
        ({"algorithm": "hello", "input": "not an object"}, "input"),
        ({"algorithm": "hello", "timeout_s": 0}, "timeout_s"),
        ({"algorithm": "hello", "timeout_s": 10**9}, "timeout_s"),
        ({"algorithm": "hello", "input": {"duration_ms": "soon"}}, "duration_ms"),
        ({"algorithm": "hello", "input": {"colour": "red"}}, "colour"),
    ],
)
async def test_bad_create_is_422(
    client: httpx.AsyncClient, body: dict[str, Any], mentions: str
) -> None:
    error = assert_error(await client.post("/v1/tasks", json=body), 422, "invalid_request")
    assert mentions in error["message"]
    listed = (await client.get("/v1/tasks")).json()
    assert listed["items"] == []


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/tasks", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(response, 422, "invalid_request")


async def test_body_over_the_limit_is_413(app_client: AppClient) -> None:
    async with app_client(max_body_bytes=2048) as client:
        big = {"algorithm": "hello", "input": {"output": "x" * 4096}}
        assert_error(await client.post("/v1/tasks", json=big), 413, "payload_too_large")
        assert (await client.get("/v1/tasks")).json()["items"] == []


async def test_full_backlog_is_429_with_retry_after(app_client: AppClient) -> None:
    async with app_client(max_active=1, max_pending=1) as client:
        running = await create(client, hang=True)
        await wait_for(client, running["task_id"], {"running"})
        await create(client, duration_ms=10)
        response = await client.post("/v1/tasks", json={"algorithm": "hello"})
        assert_error(response, 429, "saturated")
        assert int(response.headers["retry-after"]) >= 1
        assert len((await client.get("/v1/tasks")).json()["items"]) == 2


async def test_store_failure_is_503_and_creates_nothing(client: httpx.AsyncClient) -> None:
    context = client.app.state.context  # type: ignore[attr-defined]
    await context.db.write(
        lambda conn: conn.execute(text("ALTER TABLE tasks RENAME TO tasks_away"))
    )
    try:
        response = await client.post("/v1/tasks", json={"algorithm": "hello"})
        assert_error(response, 503, "store_unavailable")
    finally:
        await context.db.write(
            lambda conn: conn.execute(text("ALTER TABLE tasks_away RENAME TO tasks"))
        )
    assert (await client.get("/v1/tasks")).json()["items"] == []


async def test_cancel_a_finished_task_is_409(client: httpx.AsyncClient) -> None:
    task = await create(client, duration_ms=0)
    await wait_for(client, task["task_id"])
    error = assert_error(await client.post(f"/v1/tasks/{task['task_id']}/cancel"), 409, "conflict")
    assert "succeeded" in error["message"]


async def test_cancel_a_running_task(client: httpx.AsyncClient) -> None:
    task = await create(client, hang=True)
    await wait_for(client, task["task_id"], {"running"})
    started = time.monotonic()
    response = await client.post(f"/v1/tasks/{task['task_id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert time.monotonic() - started < 1.0
    assert_error(await client.post(f"/v1/tasks/{task['task_id']}/cancel"), 409, "conflict")


async def test_cancel_a_pending_task(app_client: AppClient) -> None:
    async with app_client(max_active=1) as client:
        blocker = await create(client, hang=True)
        await wait_for(client, blocker["task_id"], {"running"})
        waiting = await create(client, duration_ms=0)
        response = await client.post(f"/v1/tasks/{waiting['task_id']}/cancel")
        assert response.status_code == 202
        assert response.json()["status"] == "cancelled"
        await client.post(f"/v1/tasks/{blocker['task_id']}/cancel")
        await anyio.sleep(0.3)
        after = (await client.get(f"/v1/tasks/{waiting['task_id']}")).json()
        assert after["status"] == "cancelled"
        assert after["attempt"] == 0  # never ran


async def test_list_filters_and_paginates_newest_first(client: httpx.AsyncClient) -> None:
    ids = [(await create(client, duration_ms=0))["task_id"] for _ in range(5)]
    for task_id in ids:
        await wait_for(client, task_id)
    hanging = await create(client, hang=True)
    await wait_for(client, hanging["task_id"], {"running"})

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "status": "succeeded"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/tasks", params=params)).json()
        seen += [item["task_id"] for item in page["items"]]
        assert all(item["status"] == "succeeded" for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))

    async def listed_running() -> dict[str, Any] | None:
        page: dict[str, Any] = (await client.get("/v1/tasks", params={"status": "running"})).json()
        return page if page["items"] and page["items"][0]["heartbeat_at"] else None

    running = await eventually(listed_running)  # a listed run shows its live heartbeat
    assert [item["task_id"] for item in running["items"]] == [hanging["task_id"]]
    none = (await client.get("/v1/tasks", params={"algorithm": "other"})).json()
    assert none == {"items": [], "next_cursor": None}
    assert_error(await client.get("/v1/tasks", params={"status": "bogus"}), 422, "invalid_request")
    assert_error(await client.get("/v1/tasks", params={"cursor": "!!"}), 422, "invalid_request")
    assert_error(await client.get("/v1/tasks", params={"limit": 0}), 422, "invalid_request")
    await client.post(f"/v1/tasks/{hanging['task_id']}/cancel")


async def test_algorithms_and_stats(client: httpx.AsyncClient) -> None:
    algorithms = (await client.get("/v1/algorithms")).json()["items"]
    assert [a["name"] for a in algorithms] == ["hello"]
    assert (algorithms[0]["running"], algorithms[0]["waiting"]) == (0, 0)
    stats = (await client.get("/v1/stats")).json()
    assert stats["active"] == {"hello": 0}
    assert stats["totals"]["succeeded"] == 0


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
    assert ready.json()["redis"] == "ok"
    assert ready.json()["replica"]


async def test_unknown_route_has_the_error_envelope(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v2/nothing"), 404, "not_found")
