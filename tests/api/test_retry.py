"""POST /v1/tasks/{id}/retry: a failed, cancelled or timed-out task runs again as its next
attempt, its earlier attempts kept; anything else is a 409; another client's task a 404;
the transition log names the key that asked."""

import httpx
import pytest
from conftest import AppClient
from helpers import create, wait_for
from keyring import bearer, make_key

from app.domain.keys import Role
from app.domain.models import new_task_id

pytestmark = pytest.mark.anyio


async def test_a_failed_task_runs_again_and_keeps_its_first_attempt(
    app_client: AppClient,
) -> None:
    async with app_client(max_attempts=1) as client:
        # the first attempt fails; the re-run is attempt 2, which succeeds
        task = await create(client, duration_ms=1, fail_attempts=1)
        failed = await wait_for(client, task["task_id"])
        assert failed["status"] == "failed"
        assert (failed["attempt"], failed["max_attempts"]) == (1, 1)

        response = await client.post(f"/v1/tasks/{task['task_id']}/retry")
        assert response.status_code == 202, response.text
        assert response.json()["status"] in ("pending", "running")
        assert response.json()["error"] is None
        again = await wait_for(client, task["task_id"])
        assert again["status"] == "succeeded"
        assert (again["attempt"], again["max_attempts"]) == (2, 2)

        attempts = (await client.get(f"/v1/tasks/{task['task_id']}/attempts")).json()["items"]
        assert [(a["attempt"], a["status"]) for a in attempts] == [(1, "failed"), (2, "succeeded")]
        assert "injected failure" in attempts[0]["error"]


async def test_cancelled_and_timed_out_tasks_run_again(app_client: AppClient) -> None:
    async with app_client(max_attempts=1) as client:
        cancelled = await create(client, duration_ms=20000)
        await client.post(f"/v1/tasks/{cancelled['task_id']}/cancel")
        timed_out = (
            await client.post(
                "/v1/tasks",
                json={"algorithm": "hello", "input": {"duration_ms": 5000}, "timeout_s": 1},
            )
        ).json()
        assert (await wait_for(client, timed_out["task_id"]))["status"] == "timed_out"
        for task_id in (cancelled["task_id"], timed_out["task_id"]):
            response = await client.post(f"/v1/tasks/{task_id}/retry")
            assert response.status_code == 202, response.text
            running = await wait_for(client, task_id, {"running"})
            assert running["attempt"] == 2
            await client.post(f"/v1/tasks/{task_id}/cancel")


async def test_an_unfinished_or_succeeded_task_is_a_409(client: httpx.AsyncClient) -> None:
    running = await create(client, duration_ms=20000)
    await wait_for(client, running["task_id"], {"running"})
    response = await client.post(f"/v1/tasks/{running['task_id']}/retry")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert "running" in response.json()["error"]["message"]
    await client.post(f"/v1/tasks/{running['task_id']}/cancel")

    done = await create(client, duration_ms=1)
    assert (await wait_for(client, done["task_id"]))["status"] == "succeeded"
    response = await client.post(f"/v1/tasks/{done['task_id']}/retry")
    assert response.status_code == 409
    assert "succeeded" in response.json()["error"]["message"]
    assert (await client.get(f"/v1/tasks/{done['task_id']}")).json()["attempt"] == 1


async def test_an_unknown_task_is_a_404(client: httpx.AsyncClient) -> None:
    assert (await client.post(f"/v1/tasks/{new_task_id()}/retry")).status_code == 404
    assert (await client.post("/v1/tasks/not-a-task/retry")).status_code == 404


async def test_only_its_own_client_retries_and_the_log_names_the_key(
    app_client: AppClient,
) -> None:
    async with app_client(auth="on", max_attempts=1) as client:
        alice_id, alice = await make_key(client, Role.CLIENT)
        bob = bearer((await make_key(client, Role.CLIENT))[1])
        admin = (await make_key(client, Role.ADMIN))[1]
        body = {"algorithm": "hello", "input": {"duration_ms": 1, "fail_attempts": 5}}
        created = await client.post("/v1/tasks", json=body, headers=bearer(alice))
        task_id = created.json()["task_id"]
        waited = await client.get(f"/v1/tasks/{task_id}/wait?timeout_s=10", headers=bearer(admin))
        assert waited.json()["status"] == "failed"

        assert (await client.post(f"/v1/tasks/{task_id}/retry", headers=bob)).status_code == 404
        mine = await client.post(f"/v1/tasks/{task_id}/retry", headers=bearer(alice))
        assert mine.status_code == 202, mine.text
        history = await client.app.state.context.store.task_history(task_id=task_id)  # type: ignore[attr-defined]
    reruns = [
        (e.from_status, e.to_status, e.api_key_id) for e in history if e.from_status == "failed"
    ]
    assert reruns == [("failed", "pending", alice_id)]
