"""Idempotency-Key on create: the same key and body answer the first task (200,
Idempotent-Replayed), whichever replica gets it, and concurrent duplicates make one task;
another body is a 422; a key expires; another API key's same key is its own."""

from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from conftest import AppClient
from helpers import wait_for
from keyring import bearer, make_key
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from app.core.db import driver_url
from app.domain.keys import Role

pytestmark = pytest.mark.anyio
BODY = {"algorithm": "hello", "input": {"duration_ms": 1}}
DUPLICATES = 50


def count_tasks(database_url: str) -> int:
    engine = create_engine(driver_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM tasks")).scalar_one())
    finally:
        engine.dispose()


async def post(
    client: httpx.AsyncClient, key: str, body: Any = BODY, **headers: str
) -> httpx.Response:
    return await client.post("/v1/tasks", json=body, headers={"Idempotency-Key": key, **headers})


async def test_the_same_key_and_body_answer_the_first_task(client: httpx.AsyncClient) -> None:
    first = await post(client, "order-1")
    assert first.status_code == 202, first.text
    assert "Idempotent-Replayed" not in first.headers
    task_id = first.json()["task_id"]
    # the same fields in another order and spacing are the same body
    again = await client.post(
        "/v1/tasks",
        content=b'{"input": {"duration_ms": 1},   "algorithm": "hello"}',
        headers={"Idempotency-Key": "order-1", "Content-Type": "application/json"},
    )
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == f"/v1/tasks/{task_id}"
    assert again.json()["task_id"] == task_id
    other = await post(client, "order-2")
    assert other.status_code == 202
    assert other.json()["task_id"] != task_id
    without = await client.post("/v1/tasks", json=BODY)
    assert without.status_code == 202
    assert without.json()["task_id"] not in (task_id, other.json()["task_id"])


async def test_a_deleted_tasks_key_is_free_again(client: httpx.AsyncClient) -> None:
    first = (await post(client, "order-deleted")).json()
    await wait_for(client, first["task_id"])
    assert (await client.delete(f"/v1/tasks/{first['task_id']}")).status_code == 204
    again = await post(client, "order-deleted")
    assert again.status_code == 202, again.text
    assert again.json()["task_id"] != first["task_id"]


async def test_the_same_key_with_another_body_is_refused(client: httpx.AsyncClient) -> None:
    assert (await post(client, "k")).status_code == 202
    changed = await post(client, "k", {"algorithm": "hello", "input": {"duration_ms": 2}})
    assert changed.status_code == 422
    error = changed.json()["error"]
    assert error["code"] == "invalid_request"
    assert "Idempotency-Key" in error["message"]
    assert "another body" in error["message"]


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\tkey"])
async def test_a_malformed_key_is_a_422(client: httpx.AsyncClient, key: str) -> None:
    headers = [("Idempotency-Key", key.encode("latin-1")), ("Content-Type", "application/json")]
    response = await client.post("/v1/tasks", content=b'{"algorithm": "hello"}', headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert "idempotency-key" in response.json()["error"]["message"].lower()


async def test_the_longest_key_is_taken(client: httpx.AsyncClient) -> None:
    key = "~ !" + "x" * 252
    assert (await post(client, key)).status_code == 202
    assert (await post(client, key)).status_code == 200


async def test_an_expired_key_is_free_again(app_client: AppClient) -> None:
    async with app_client(idempotency_ttl_s=1) as client:
        first = await post(client, "short-lived")
        assert (await post(client, "short-lived")).status_code == 200
        await anyio.sleep(1.2)
        # free again, and for another body too
        later = await post(client, "short-lived", {"algorithm": "hello", "input": {"steps": 2}})
        assert later.status_code == 202, later.text
        assert later.json()["task_id"] != first.json()["task_id"]
        replay = await post(client, "short-lived", {"algorithm": "hello", "input": {"steps": 2}})
        assert replay.json()["task_id"] == later.json()["task_id"]


async def test_expired_keys_are_swept(app_client: AppClient) -> None:
    async with app_client(idempotency_ttl_s=1) as client:
        for n in range(5):
            assert (await post(client, f"sweep-{n}")).status_code == 202
        store = client.app.state.context.store  # type: ignore[attr-defined]
        assert await store.sweep_idempotency_keys(limit=2) == 0  # none expired yet
        await anyio.sleep(1.2)
        assert await store.sweep_idempotency_keys(limit=2) == 2  # bounded
        assert await store.sweep_idempotency_keys(limit=10) == 3
        assert await store.sweep_idempotency_keys(limit=10) == 0


async def test_another_api_keys_same_key_gets_its_own_task(app_client: AppClient) -> None:
    async with app_client(auth="on") as client:
        alice = bearer((await make_key(client, Role.CLIENT))[1])
        bob = bearer((await make_key(client, Role.CLIENT))[1])
        hers = await post(client, "shared", **alice)
        his = await post(client, "shared", **bob)
        assert hers.status_code == his.status_code == 202
        assert hers.json()["task_id"] != his.json()["task_id"]
        assert (await post(client, "shared", **bob)).json()["task_id"] == his.json()["task_id"]
        # bob's other body under the same key is his own business, never alice's task
        other = await post(client, "shared", {"algorithm": "hello", "input": {"steps": 3}}, **bob)
        assert other.status_code == 422


async def concurrent_creates(urls: list[str], key: str) -> list[httpx.Response]:
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(timeout=30) as http:

        async def one(n: int) -> None:
            answers.append(await post_to(http, urls[n % len(urls)], key))

        async with anyio.create_task_group() as tg:
            for n in range(DUPLICATES):
                tg.start_soon(one, n)
    return answers


async def post_to(http: httpx.AsyncClient, url: str, key: str) -> httpx.Response:
    return await http.post(f"{url}/v1/tasks", json=BODY, headers={"Idempotency-Key": key})


def assert_one_task(answers: list[httpx.Response], database_url: str) -> None:
    assert len(answers) == DUPLICATES
    assert all(a.status_code in (200, 202) for a in answers), [a.text for a in answers]
    assert sorted(a.status_code for a in answers) == [200] * (DUPLICATES - 1) + [202]
    assert len({a.json()["task_id"] for a in answers}) == 1
    assert count_tasks(database_url) == 1


async def test_concurrent_duplicates_on_one_replica_make_one_task(
    client: httpx.AsyncClient, database_url: str
) -> None:
    answers: list[httpx.Response] = []

    async def one() -> None:
        answers.append(await post(client, "together"))

    async with anyio.create_task_group() as tg:
        for _ in range(DUPLICATES):
            tg.start_soon(one)
    assert_one_task(answers, database_url)


async def test_concurrent_duplicates_over_two_replicas_make_one_task(
    start_server: Callable[..., Any], database_url: str
) -> None:
    servers = [start_server(), start_server()]
    for round_ in range(3):  # a few rounds, so that the race is really run
        answers = await concurrent_creates([s.url for s in servers], f"spread-{round_}")
        assert len({a.json()["task_id"] for a in answers}) == 1, [a.text for a in answers]
        assert sorted(a.status_code for a in answers) == [200] * (DUPLICATES - 1) + [202]
    assert count_tasks(database_url) == 3
