"""The dashboard's algorithm pages over HTTP: running against max_active, waiting and
paused; pause, resume and the policy form going through the same validation as the API
(a bad value shows its 422 message); a viewer sees no controls and is refused them. And
the task page: every attempt from the attempts table, priority, max_attempts, and
"waiting: algorithm paused"."""

import httpx
import pytest
from conftest import AppClient
from helpers import create, wait_for
from keyring import make_key

from app.domain.keys import Role

pytestmark = pytest.mark.anyio
ORIGIN = {"Origin": "http://taskbeat"}
FORM = {**ORIGIN, "Content-Type": "application/x-www-form-urlencoded"}


async def policy(client: httpx.AsyncClient) -> dict[str, object]:
    answer = await client.get("/v1/algorithms/hello")
    assert answer.status_code == 200
    return dict(answer.json())


async def post(client: httpx.AsyncClient, path: str, **fields: str | list[str]) -> httpx.Response:
    return await client.post(path, data=fields, headers=FORM)


async def test_pausing_from_the_page_holds_new_tasks_until_resumed(
    client: httpx.AsyncClient,
) -> None:
    listing = (await client.get("/ui/algorithms")).text
    assert 'href="/ui/algorithms/hello"' in listing
    page = (await client.get("/ui/algorithms/hello")).text
    assert 'id="max-active">10000<' in page
    assert ">Pause<" in page
    assert ">Save policy<" in page

    paused = await post(client, "/ui/algorithms/hello/pause", for_s="")
    assert paused.status_code == 303
    assert paused.headers["location"] == "/ui/algorithms/hello"
    assert (await policy(client))["paused"] is True
    task = await create(client, duration_ms=10)
    shown = (await client.get(f"/ui/tasks/{task['task_id']}")).text
    assert "waiting: algorithm paused" in shown
    page = (await client.get("/ui/algorithms/hello")).text
    assert 'id="waiting">1<' in page
    assert ">Resume<" in page

    assert (await post(client, "/ui/algorithms/hello/resume")).status_code == 303
    assert (await policy(client))["paused"] is False
    assert (await wait_for(client, task["task_id"]))["status"] == "succeeded"
    assert "waiting: algorithm paused" not in (await client.get("/ui/algorithms/hello")).text


async def test_a_pause_for_some_seconds_shows_when_it_ends(client: httpx.AsyncClient) -> None:
    assert (await post(client, "/ui/algorithms/hello/pause", for_s="600")).status_code == 303
    shown = await policy(client)
    assert shown["paused"] is True
    assert shown["paused_until"] is not None
    assert " until 20" in (await client.get("/ui/algorithms")).text
    for bad in ("soon", "-5", "nan"):
        refused = await post(client, "/ui/algorithms/hello/pause", for_s=bad)
        assert refused.status_code == 422, bad
        assert "for_s" in refused.text
        assert 'role="alert"' in refused.text


async def test_the_policy_form_changes_what_the_api_shows(client: httpx.AsyncClient) -> None:
    before = await policy(client)
    page = (await client.get("/ui/algorithms/hello")).text
    assert 'name="retry_on" value="lost" checked' in page
    changed = await post(
        client,
        "/ui/algorithms/hello",
        max_active="3",
        priority=str(before["priority"]),
        retry_base_s="0.5",
        retry_on=["failed"],
        retry_on_shown="1",
    )
    assert changed.status_code == 303
    after = await policy(client)
    assert after["max_active"] == 3
    assert after["retry_base_s"] == 0.5
    assert after["retry_on"] == ["failed"]
    assert after["max_waiting"] == before["max_waiting"]
    # an emptied field goes back to its configured value, as null does in a PATCH
    assert (await post(client, "/ui/algorithms/hello", max_active="")).status_code == 303
    assert (await policy(client))["max_active"] == before["max_active"]


async def test_a_refused_value_shows_the_apis_message_on_the_page(
    client: httpx.AsyncClient,
) -> None:
    for fields, says in (
        ({"max_active": "0"}, "max_active: Input should be greater than or equal to 1"),
        ({"max_active": "many"}, "max_active: Input should be a valid integer"),
        ({"priority": "12"}, "priority: Input should be less than or equal to 9"),
        ({"timeout_s": "999999999"}, "timeout_s must not exceed max_timeout_s"),
        ({"retry_on": ["never"], "retry_on_shown": "1"}, "retry_on"),
    ):
        api = await client.patch(
            "/v1/algorithms/hello",
            json={k: v for k, v in fields.items() if k != "retry_on_shown"},
        )
        assert api.status_code == 422, fields
        refused = await post(client, "/ui/algorithms/hello", **fields)
        assert refused.status_code == 422, fields
        assert says in refused.text, (fields, refused.text[:500])
        for value in fields.values():
            if isinstance(value, str) and value != "1":
                assert f'value="{value}"' in refused.text  # what was typed, to mend
    assert (await policy(client))["max_active"] == 10000
    assert (await client.get("/ui/algorithms/nope")).status_code == 404
    assert (await post(client, "/ui/algorithms/nope/pause")).status_code == 404


async def test_a_viewer_sees_the_policy_but_no_controls(app_client: AppClient) -> None:
    async with app_client(auth="on") as client:
        _, viewer = await make_key(client, Role.VIEWER)
        signed = await post(client, "/ui/login", key=viewer)
        assert signed.status_code == 303
        page = (await client.get("/ui/algorithms/hello")).text
        assert "max_active" in page
        assert ">Pause<" not in page
        assert ">Save policy<" not in page
        assert '<form method="post" action="/ui/algorithms' not in page
        for path in ("/ui/algorithms/hello/pause", "/ui/algorithms/hello"):
            refused = await post(client, path, max_active="1")
            assert refused.status_code == 403, path
            assert refused.json()["error"]["code"] == "forbidden"


async def test_the_task_page_lists_every_attempt_with_its_error_and_replica(
    client: httpx.AsyncClient,
) -> None:
    task = await create(client, duration_ms=10, fail_attempts=2)
    final = await wait_for(client, task["task_id"])
    assert final["status"] == "succeeded"
    assert final["attempt"] == 3
    runs = (await client.get(f"/v1/tasks/{task['task_id']}/attempts")).json()["items"]
    page = (await client.get(f"/ui/tasks/{task['task_id']}")).text
    table = page[page.index('id="attempts"') : page.index("</table>", page.index('id="attempts"'))]
    assert table.count('<tr><td class="num">') == 3
    replica = client.app.state.context.replica_id  # type: ignore[attr-defined]
    assert table.count(replica) == 3
    for run in runs:
        assert f">{run['status']}<" in table
        if run["error"]:
            assert run["error"] in table
    assert sum(1 for run in runs if run["error"]) == 2
    assert "3 of 3" in page  # attempt of max_attempts
    assert "Priority" in page
