"""The hot routes (app.api.hot_routes) answer as the app's own routes do: the same status,
headers and bytes for the same task, and every request they do not fully understand is the
app's to refuse, with its own words."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from helpers import create, wait_for

from app.api.hot_routes import HotRoutes
from app.domain.models import new_task_id

pytestmark = pytest.mark.anyio
VOLATILE = {"task_id", "created_at", "updated_at", "started_at", "run_at", "next_attempt_at"}


def full_stack(app: Any) -> httpx.AsyncClient:
    """A client of the same running app with the hot routes left out of its layers."""
    saved = app.user_middleware
    app.user_middleware = [layer for layer in saved if layer.cls is not HotRoutes]
    try:
        stack = app.build_middleware_stack()
    finally:
        app.user_middleware = saved

    async def without_hot_routes(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = app
        await stack(scope, receive, send)

    transport = httpx.ASGITransport(app=without_hot_routes)
    return httpx.AsyncClient(transport=transport, base_url="http://taskbeat")


@pytest.fixture
async def full(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    async with full_stack(client.app) as other:  # type: ignore[attr-defined]
        yield other


def same_answer(hot: httpx.Response, full: httpx.Response) -> None:
    assert hot.status_code == full.status_code, (hot.text, full.text)
    assert sorted(hot.headers.multi_items()) == sorted(full.headers.multi_items())
    assert hot.content == full.content


async def test_a_task_reads_the_same_in_every_state(client, full) -> None:
    pending = await create(client, duration_ms=60_000, steps=1)  # a slow one, still running
    done = await create(client, duration_ms=0)
    await wait_for(client, done["task_id"])
    await wait_for(client, pending["task_id"], {"running"})
    for task in (pending, done):
        path = f"/v1/tasks/{task['task_id']}"
        same_answer(await client.get(path), await full.get(path))


async def test_a_create_answers_as_the_route_does(client, full) -> None:
    body = {"algorithm": "hello", "input": {"duration_ms": 0}, "priority": 3, "delay_s": 60}
    hot, slow = await client.post("/v1/tasks", json=body), await full.post("/v1/tasks", json=body)
    assert hot.status_code == slow.status_code == 202
    assert hot.headers.keys() == slow.headers.keys()
    assert hot.headers["location"] == f"/v1/tasks/{hot.json()['task_id']}"
    shown = {key: value for key, value in hot.json().items() if key not in VOLATILE}
    assert shown == {key: value for key, value in slow.json().items() if key not in VOLATILE}


async def test_an_idempotent_replay_answers_as_the_route_does(client, full) -> None:
    body = {"algorithm": "hello", "input": {"duration_ms": 0}}
    first = await client.post("/v1/tasks", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 202
    await wait_for(client, first.json()["task_id"])
    hot = await client.post("/v1/tasks", json=body, headers={"Idempotency-Key": "k-1"})
    slow = await full.post("/v1/tasks", json=body, headers={"Idempotency-Key": "k-1"})
    same_answer(hot, slow)
    assert hot.status_code == 200
    assert hot.headers["idempotent-replayed"] == "true"
    other = {"algorithm": "hello", "input": {"duration_ms": 1}}
    hot = await client.post("/v1/tasks", json=other, headers={"Idempotency-Key": "k-1"})
    same_answer(hot, await full.post("/v1/tasks", json=other, headers={"Idempotency-Key": "k-1"}))
    assert hot.status_code == 422


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


REFUSED: list[tuple[dict[str, str], bytes]] = [
    ({"content-type": "application/json"}, b'{"algorithm": "nope"}'),  # the service's refusal
    ({"content-type": "application/json"}, b'{"algorithm": "hello", "input": 3}'),
    ({"content-type": "application/json"}, b'{"algorithm": "hello", "timeout_s": "5"}'),
    ({"content-type": "application/json"}, b'{"algorithm": "hello", "input": {"n": NaN}}'),
    ({"content-type": "application/json"}, b"[]"),
    ({"content-type": "application/json"}, b""),
    ({"content-type": "text/plain"}, b'{"algorithm": "hello"}'),
    ({}, b'{"algorithm": "hello"}'),
    ({"content-type": "application/json", "idempotency-key": ""}, b'{"algorithm": "hello"}'),
    ({"content-type": "application/json", "idempotency-key": "x" * 256}, b'{"algorithm": "hello"}'),
    ({"content-type": "application/json", "idempotency-key": "\x7f"}, b'{"algorithm": "hello"}'),
]


@pytest.mark.parametrize(("headers", "body"), REFUSED)
async def test_what_the_hot_path_refuses_is_refused_with_the_apps_words(
    client, full, headers: dict[str, str], body: bytes
) -> None:
    hot = await client.post("/v1/tasks", content=chunks(body[:5], body[5:]), headers=headers)
    same_answer(hot, await full.post("/v1/tasks", content=body, headers=headers))
    assert hot.status_code == 422
    assert hot.json()["error"]["code"] == "invalid_request"


async def test_two_content_types_or_keys_are_the_apps_to_judge(client) -> None:
    body = b'{"algorithm": "hello", "input": {"duration_ms": 0}}'
    json_type = ("content-type", "application/json")
    two_types = [json_type, ("content-type", "text/plain")]
    assert (await client.post("/v1/tasks", content=body, headers=two_types)).status_code == 202
    two_keys = [json_type, ("idempotency-key", "a"), ("idempotency-key", "b")]
    first = await client.post("/v1/tasks", content=body, headers=two_keys)
    assert first.status_code == 202  # the app reads the first key, as FastAPI does
    replay = await client.post(
        "/v1/tasks", content=body, headers=[json_type, ("idempotency-key", "a")]
    )
    assert replay.status_code == 200
    assert replay.json()["task_id"] == first.json()["task_id"]


async def test_a_streamed_body_over_the_limit_is_a_413(app_client) -> None:
    async with app_client(max_body_bytes=2048) as client:
        headers = {"content-type": "application/json"}
        part = b'{"algorithm": "hello", "input": {"s": "' + b"x" * 1500
        answer = await client.post("/v1/tasks", content=chunks(part, part, b'"}}'), headers=headers)
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "payload_too_large"
        assert answer.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("task_id", [new_task_id(), new_task_id().upper(), "nope", "a" * 36])
async def test_an_unknown_or_odd_id_is_a_404_as_from_the_route(client, full, task_id) -> None:
    path = f"/v1/tasks/{task_id}"
    hot = await client.get(path)
    same_answer(hot, await full.get(path))
    assert hot.status_code == 404


async def test_paths_near_a_tasks_are_the_apps(client, full) -> None:
    task = await wait_for(client, (await create(client, duration_ms=0))["task_id"])
    for path in (f"/v1/tasks/{task['task_id']}/", f"/v1/tasks/{task['task_id']}/attempts"):
        same_answer(await client.get(path), await full.get(path))


async def test_a_cancel_answers_as_the_route_does(client, full) -> None:
    one, other = [await create(client, duration_ms=60_000) for _ in range(2)]
    for task in (one, other):
        await wait_for(client, task["task_id"], {"running"})
    hot = await client.post(f"/v1/tasks/{one['task_id']}/cancel")
    slow = await full.post(f"/v1/tasks/{other['task_id']}/cancel")
    assert hot.status_code == slow.status_code == 202
    assert hot.headers.keys() == slow.headers.keys()
    assert hot.json()["status"] == "cancelled"
    volatile = VOLATILE | {"finished_at", "heartbeat_at"}
    shown = {key: value for key, value in hot.json().items() if key not in volatile}
    assert shown == {key: value for key, value in slow.json().items() if key not in volatile}
    again = f"/v1/tasks/{one['task_id']}/cancel"  # finished now: the route's 409
    same_answer(await client.post(again), await full.post(again))
    for odd in (new_task_id(), "nope", new_task_id().upper()):
        path = f"/v1/tasks/{odd}/cancel"
        hot = await client.post(path)
        same_answer(hot, await full.post(path))
        assert hot.status_code == 404
