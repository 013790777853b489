"""The dashboard's retry button and bulk page over HTTP: a finished task runs again from its
page; the bulk page counts what a filter matches before anything is done, then cancels or
re-runs exactly that, through the same service as /v1/bulk; a viewer sees no buttons."""

import httpx
import pytest
from conftest import AppClient
from helpers import create, wait_for
from keyring import make_key

from app.domain.keys import Role

pytestmark = pytest.mark.anyio
ORIGIN = {"Origin": "http://taskbeat"}
FORM = {**ORIGIN, "Content-Type": "application/x-www-form-urlencoded"}


async def test_a_failed_task_runs_again_from_its_page(client: httpx.AsyncClient) -> None:
    succeeded = await create(client, duration_ms=10)
    await client.patch("/v1/algorithms/hello", json={"max_attempts": 1})
    failed = await create(client, duration_ms=10, fail_attempts=1)
    assert (await wait_for(client, failed["task_id"]))["status"] == "failed"
    assert (await wait_for(client, succeeded["task_id"]))["status"] == "succeeded"
    page = (await client.get(f"/ui/tasks/{failed['task_id']}")).text
    assert ">Retry task<" in page
    assert "hx-confirm=" in page
    assert ">Retry task<" not in (await client.get(f"/ui/tasks/{succeeded['task_id']}")).text

    url = f"/ui/tasks/{failed['task_id']}/retry"
    assert (await client.post(url, headers={"Origin": "http://evil.example"})).status_code == 403
    again = await client.post(url, headers={**ORIGIN, "HX-Request": "true"})
    assert again.status_code == 200
    assert again.headers["hx-redirect"] == f"/ui/tasks/{failed['task_id']}"
    final = await wait_for(client, failed["task_id"])
    assert final["status"] == "succeeded"  # attempt 2 is past fail_attempts
    assert final["attempt"] == 2
    conflict = await client.post(url, headers=ORIGIN)
    assert conflict.status_code == 409


async def test_the_bulk_page_counts_first_then_acts_on_what_it_counted(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/v1/algorithms/hello/pause")
    waiting = [await create(client, duration_ms=10) for _ in range(3)]
    page = await client.get("/ui/bulk", params={"action": "cancel", "status": "pending"})
    assert page.status_code == 200
    assert "3 tasks would be cancelled now" in page.text
    assert ">Cancel 3 tasks<" in page.text
    for task in waiting:  # counting did nothing
        assert (await client.get(f"/v1/tasks/{task['task_id']}")).json()["status"] == "pending"

    form = {"status": "pending", "algorithm": "hello", "created_before": ""}
    done = await client.post("/ui/bulk/cancel", data=form, headers=FORM)
    assert done.status_code == 200
    assert "Cancelled: 3</strong> of 3 matched" in done.text
    assert "0 tasks would be cancelled now" in done.text
    for task in waiting:
        assert (await client.get(f"/v1/tasks/{task['task_id']}")).json()["status"] == "cancelled"

    await client.post("/v1/algorithms/hello/resume")
    counted = await client.get("/ui/bulk", params={"action": "retry", "status": "cancelled"})
    assert "3 tasks would be run again now" in counted.text
    retried = await client.post("/ui/bulk/retry", data={"status": "cancelled"}, headers=FORM)
    assert "Back in the queue: 3</strong> of 3 matched" in retried.text
    for task in waiting:
        assert (await wait_for(client, task["task_id"]))["status"] == "succeeded"

    bad = await client.post("/ui/bulk/cancel", data={"status": "sleeping"}, headers=FORM)
    assert bad.status_code == 422
    assert "status: Input should be" in bad.text
    assert (await client.get("/ui/bulk", params={"action": "explode"})).status_code == 422
    assert (await client.post("/ui/bulk/cancel", data=form)).status_code == 403  # no Origin


async def test_a_viewer_counts_but_sees_no_bulk_or_retry_buttons(app_client: AppClient) -> None:
    async with app_client(auth="on") as client:
        _, viewer = await make_key(client, Role.VIEWER)
        signed = await client.post("/ui/login", data={"key": viewer}, headers=FORM)
        assert signed.status_code == 303
        page = await client.get("/ui/bulk", params={"action": "retry"})
        assert "0 tasks would be run again now" in page.text
        assert 'id="bulk-act"' not in page.text
        for path in ("/ui/bulk/cancel", "/ui/bulk/retry"):
            refused = await client.post(path, data={}, headers=FORM)
            assert refused.status_code == 403, path
