"""Per-key limits hold over two replicas: requests per second (counted in Redis) and
unfinished tasks (counted in the database); over either, 429 with Retry-After."""

import time

import anyio
import httpx
import pytest
from conftest import AppClient
from keyring import bearer, make_key

from app.domain.keys import Role

pytestmark = pytest.mark.anyio
RATE = 5


async def test_requests_per_second_are_limited_over_all_replicas(app_client: AppClient) -> None:
    async with app_client(auth="on") as one, app_client(auth="on") as two:
        _, secret = await make_key(one, Role.VIEWER, rate_per_s=RATE)
        started = time.time()
        answers: list[httpx.Response] = []
        for i in range(40):
            replica = one if i % 2 else two
            answers.append(await replica.get("/v1/stats", headers=bearer(secret)))
        ended = time.time()
    windows = int(ended) - int(started) + 1
    admitted = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    assert len(admitted) + len(refused) == len(answers)
    # one count over both replicas: per-replica counters would admit twice as many
    assert RATE <= len(admitted) <= RATE * windows, (len(admitted), windows)
    assert refused
    assert all(1 <= int(a.headers["retry-after"]) <= 1 for a in refused)
    assert refused[0].json()["error"]["code"] == "limit_exceeded"


async def test_unfinished_tasks_are_limited_over_all_replicas(app_client: AppClient) -> None:
    body = {"algorithm": "hello", "input": {"duration_ms": 30000}}
    async with app_client(auth="on") as one, app_client(auth="on") as two:
        _, secret = await make_key(one, Role.CLIENT, max_unfinished=2)
        key = bearer(secret)
        first = await one.post("/v1/tasks", json=body, headers=key)
        second = await two.post("/v1/tasks", json=body, headers=key)
        assert first.status_code == second.status_code == 202
        for replica in (one, two):
            over = await replica.post("/v1/tasks", json=body, headers=key)
            assert over.status_code == 429, over.text
            assert int(over.headers["retry-after"]) >= 1
        # another key is not held back by this one's tasks
        _, other = await make_key(one, Role.CLIENT, max_unfinished=2)
        assert (await two.post("/v1/tasks", json=body, headers=bearer(other))).status_code == 202
        cancelled = await one.post(f"/v1/tasks/{first.json()['task_id']}/cancel", headers=key)
        assert cancelled.json()["status"] == "cancelled"
        assert (await two.post("/v1/tasks", json=body, headers=key)).status_code == 202


async def test_racing_creates_never_take_a_key_past_its_unfinished_limit(
    app_client: AppClient,
) -> None:
    """Concurrent creates over two replicas: the count and the inserts share a transaction
    (and an advisory lock per key on PostgreSQL), so exactly the limit get in."""
    limit, tries = 3, 40
    body = {"algorithm": "hello", "input": {"duration_ms": 30000}}
    async with app_client(auth="on") as one, app_client(auth="on") as two:
        _, secret = await make_key(one, Role.CLIENT, max_unfinished=limit)
        key = bearer(secret)
        answers: list[httpx.Response] = []

        async def create(replica: httpx.AsyncClient) -> None:
            answers.append(await replica.post("/v1/tasks", json=body, headers=key))

        async with anyio.create_task_group() as tg:
            for i in range(tries):
                tg.start_soon(create, one if i % 2 else two)
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [202] * limit + [429] * (tries - limit), statuses
        listed = (await one.get("/v1/tasks", params={"limit": 100}, headers=key)).json()
        assert len(listed["items"]) == limit
