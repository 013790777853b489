"""A client key sees and acts on only the tasks it created, by every path a task can be
reached; viewers read all and change nothing; admins do all; the log names the keys."""

from typing import Any

import httpx
import pytest
from conftest import AppClient
from keyring import bearer, make_key

from app.domain.keys import Role
from app.domain.models import new_task_id

pytestmark = pytest.mark.anyio


async def create_as(client: httpx.AsyncClient, headers: dict[str, str], **input: Any) -> str:
    body = {"algorithm": "hello", "input": input}
    response = await client.post("/v1/tasks", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


async def every_page(client: httpx.AsyncClient, headers: dict[str, str], **query: Any) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(50):  # bounded: a cursor loop would fail the test, not hang it
        params = {**query, "limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/tasks", params=params, headers=headers)).json()
        ids += [task["task_id"] for task in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("the cursor never ended")


async def test_another_clients_task_is_not_there_by_any_path(app_client: AppClient) -> None:
    async with app_client(auth="on") as client:
        alice = bearer((await make_key(client, Role.CLIENT))[1])
        bob = bearer((await make_key(client, Role.CLIENT))[1])
        viewer = bearer((await make_key(client, Role.VIEWER))[1])
        mine = [await create_as(client, alice, duration_ms=1) for _ in range(3)]
        theirs = [await create_as(client, bob, duration_ms=1) for _ in range(2)]
        running = await create_as(client, bob, duration_ms=20000)
        for task_id in [*mine, *theirs]:
            wait = await client.get(f"/v1/tasks/{task_id}/wait?timeout_s=10", headers=viewer)
            assert wait.json()["status"] == "succeeded"

        nowhere = new_task_id()
        for task_id in [*theirs, running]:
            for method, suffix in [
                ("GET", ""),
                ("GET", "/wait?timeout_s=0.1"),
                ("GET", "/events"),
                ("POST", "/cancel"),
                ("DELETE", ""),
            ]:
                theirs_answer = await client.request(
                    method, f"/v1/tasks/{task_id}{suffix}", headers=alice
                )
                missing = await client.request(
                    method, f"/v1/tasks/{nowhere}{suffix}", headers=alice
                )
                assert theirs_answer.status_code == missing.status_code == 404, (method, suffix)
                assert theirs_answer.json()["error"]["code"] == missing.json()["error"]["code"]
        # alice's cancel and deletes did nothing to bob's tasks
        for task_id in theirs:
            assert (await client.get(f"/v1/tasks/{task_id}", headers=bob)).status_code == 200
        assert (await client.get(f"/v1/tasks/{running}", headers=bob)).json()["status"] == "running"

        assert sorted(await every_page(client, alice)) == sorted(mine)
        assert sorted(await every_page(client, alice, status="succeeded")) == sorted(mine)
        assert sorted(await every_page(client, alice, algorithm="hello")) == sorted(mine)
        assert await every_page(client, alice, status="running") == []
        assert sorted(await every_page(client, viewer)) == sorted([*mine, *theirs, running])
        totals = (await client.get("/v1/stats", headers=alice)).json()["totals"]
        assert sum(totals.values()) == 3

        for task_id in mine:
            assert (await client.get(f"/v1/tasks/{task_id}", headers=alice)).status_code == 200
            events = await client.get(f"/v1/tasks/{task_id}/events", headers=alice)
            assert events.status_code == 200
            assert "event: status" in events.text
        # a viewer reads bob's task but may not cancel it
        assert (await client.get(f"/v1/tasks/{running}", headers=viewer)).status_code == 200
        assert (await client.post(f"/v1/tasks/{running}/cancel", headers=viewer)).status_code == 403
        cancel = await client.post(f"/v1/tasks/{running}/cancel", headers=bob)
        assert cancel.status_code == 202
        assert cancel.json()["status"] == "cancelled"


async def test_the_transition_log_names_the_keys_that_created_and_cancelled(
    app_client: AppClient,
) -> None:
    async with app_client(auth="on") as client:
        client_id, client_secret = await make_key(client, Role.CLIENT)
        admin_id, admin_secret = await make_key(client, Role.ADMIN)
        task_id = await create_as(client, bearer(client_secret), duration_ms=20000)
        response = await client.post(f"/v1/tasks/{task_id}/cancel", headers=bearer(admin_secret))
        assert response.json()["status"] == "cancelled"
        history = await client.app.state.context.store.task_history(task_id=task_id)  # type: ignore[attr-defined]
    steps = [(event.to_status, event.api_key_id) for event in history]
    assert steps == [("pending", client_id), ("running", None), ("cancelled", admin_id)]
