"""POST /v1/bulk/cancel and /v1/bulk/retry: every task a strict filter matches, a client
key's own only, safe to repeat; a bulk cancel reaches runs on every replica and takes no
longer than twice the creation of its tasks."""

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from conftest import AppClient
from helpers import create, eventually, wait_for
from keyring import bearer, make_key

from app.domain.keys import Role

pytestmark = pytest.mark.anyio
MANY = 1000
LIMIT = 300  # the cluster-wide max_active of hello here: the others wait in the queue


async def test_bulk_cancel_of_a_thousand_pending_and_running_tasks(app_client: AppClient) -> None:
    async with app_client(algorithms={"hello": {"max_active": LIMIT}}) as client:
        store = client.app.state.context.store  # type: ignore[attr-defined]
        body = {"algorithm": "hello", "input": {"duration_ms": 120000}}
        limiter = anyio.CapacityLimiter(50)

        async def one() -> None:
            async with limiter:
                response = await client.post("/v1/tasks", json=body)
                assert response.status_code == 202, response.text

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(MANY):
                tg.start_soon(one)
        creation_s = time.perf_counter() - started
        counts = await store.count_by_status()
        assert sum(counts.values()) == MANY
        assert counts.get("running", 0) == LIMIT

        async def all_cancelled() -> bool:
            return (await store.count_by_status()).get("cancelled", 0) == MANY

        started = time.perf_counter()
        response = await client.post("/v1/bulk/cancel", json={"algorithm": "hello"})
        assert response.status_code == 200, response.text
        assert response.json() == {"matched": MANY, "changed": MANY}
        await eventually(all_cancelled, timeout_s=max(10.0, 2 * creation_s))
        cancel_s = time.perf_counter() - started
        assert cancel_s <= 2 * creation_s, (cancel_s, creation_s)

        again = await client.post("/v1/bulk/cancel", json={"algorithm": "hello"})
        assert again.json() == {"matched": 0, "changed": 0}


async def test_bulk_cancel_reaches_runs_on_another_replica(app_client: AppClient) -> None:
    # A long heartbeat: the cancel must come by message, not at a lease renewal.
    async with (
        app_client(heartbeat_interval_s=30, lease_s=90) as replica_a,
        app_client(heartbeat_interval_s=30, lease_s=90) as replica_b,
    ):
        tasks = [await create(replica, hang=True) for replica in (replica_a, replica_b) * 3]
        for task in tasks:
            await wait_for(replica_a, task["task_id"], {"running"})
        response = await replica_b.post("/v1/bulk/cancel", json={})
        assert response.json() == {"matched": 6, "changed": 6}
        for task in tasks:
            assert (await wait_for(replica_a, task["task_id"], timeout_s=2.0))[
                "status"
            ] == "cancelled"


async def test_bulk_retry_runs_the_failed_ones_again(app_client: AppClient) -> None:
    async with app_client(max_attempts=1) as client:
        failing = [await create(client, duration_ms=1, fail_attempts=1) for _ in range(3)]
        fine = await create(client, duration_ms=1)
        for task in [*failing, fine]:
            await wait_for(client, task["task_id"])
        response = await client.post("/v1/bulk/retry", json={"status": "failed"})
        assert response.json() == {"matched": 3, "changed": 3}
        for task in failing:
            again = await wait_for(client, task["task_id"])
            assert (again["status"], again["attempt"]) == ("succeeded", 2)
        assert (await client.get(f"/v1/tasks/{fine['task_id']}")).json()["attempt"] == 1
        # nothing left to re-run: a succeeded task never is
        assert (await client.post("/v1/bulk/retry", json={})).json() == {
            "matched": 0,
            "changed": 0,
        }


async def test_the_filter_narrows_and_is_strict(client: httpx.AsyncClient) -> None:
    old = await create(client, duration_ms=60000)
    await anyio.sleep(0.05)
    cut = datetime.now(UTC)
    await anyio.sleep(0.05)
    new = await create(client, duration_ms=60000)
    response = await client.post(
        "/v1/bulk/cancel", json={"created_before": cut.isoformat(), "algorithm": "hello"}
    )
    assert response.json() == {"matched": 1, "changed": 1}
    assert (await wait_for(client, old["task_id"]))["status"] == "cancelled"
    assert (await client.get(f"/v1/tasks/{new['task_id']}")).json()["status"] != "cancelled"
    nothing = await client.post("/v1/bulk/cancel", json={"algorithm": "other"})
    assert nothing.json() == {"matched": 0, "changed": 0}
    finished = await client.post("/v1/bulk/cancel", json={"status": "succeeded"})
    assert finished.json() == {"matched": 0, "changed": 0}
    bad: list[Any] = [
        {"algoritm": "hello"},
        {"status": "done"},
        {"created_before": "yesterday"},
        {"algorithm": "a\u0000b"},
        {"created_before": (datetime.now(UTC) - timedelta(days=1)).isoformat(), "x": 1},
        [],
    ]
    for body in bad:
        for action in ("cancel", "retry"):
            answer = await client.post(f"/v1/bulk/{action}", json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert answer.json()["error"]["code"] == "invalid_request"
    await client.post("/v1/bulk/cancel", json={})


async def test_a_client_key_touches_only_its_own_tasks(app_client: AppClient) -> None:
    async with app_client(auth="on", max_attempts=1) as client:
        alice = bearer((await make_key(client, Role.CLIENT))[1])
        bob = bearer((await make_key(client, Role.CLIENT))[1])
        viewer = bearer((await make_key(client, Role.VIEWER))[1])
        admin = bearer((await make_key(client, Role.ADMIN))[1])
        body = {"algorithm": "hello", "input": {"duration_ms": 60000}}
        hers = [(await client.post("/v1/tasks", json=body, headers=alice)).json() for _ in range(2)]
        his = [(await client.post("/v1/tasks", json=body, headers=bob)).json() for _ in range(3)]

        assert (await client.post("/v1/bulk/cancel", json={}, headers=viewer)).status_code == 403
        mine = await client.post("/v1/bulk/cancel", json={}, headers=alice)
        assert mine.json() == {"matched": 2, "changed": 2}
        for task in his:
            shown = await client.get(f"/v1/tasks/{task['task_id']}", headers=admin)
            assert shown.json()["status"] != "cancelled"
        # alice's re-run takes back only her own cancelled tasks
        rerun = await client.post("/v1/bulk/retry", json={}, headers=bob)
        assert rerun.json() == {"matched": 0, "changed": 0}
        everything = await client.post("/v1/bulk/cancel", json={}, headers=admin)
        assert everything.json() == {"matched": 3, "changed": 3}
        for task in [*hers, *his]:
            shown = await client.get(f"/v1/tasks/{task['task_id']}/wait?timeout_s=5", headers=admin)
            assert shown.json()["status"] == "cancelled"
