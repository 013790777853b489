"""The dashboard over HTTP (no browser): pages, filters, the same-origin check on actions,
the CSP, and pages that stay fast with 100,000 tasks in the database."""

import time
import uuid
from datetime import timedelta

import anyio
import httpx
import pytest
from helpers import create, wait_for
from sqlalchemy import create_engine, insert

from app.core.db import driver_url
from app.domain.models import utcnow
from app.store.tables import tasks

pytestmark = pytest.mark.anyio
ORIGIN = "http://taskbeat"  # the test client's base URL
PAGES = ("/ui/overview", "/ui/tasks", "/ui/algorithms", "/ui/replicas")


async def test_every_page_answers_with_a_content_security_policy(client: httpx.AsyncClient) -> None:
    assert (await client.get("/ui")).headers["location"] == "/ui/overview"
    for page in PAGES:
        answer = await client.get(page)
        assert answer.status_code == 200, page
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert answer.headers["x-frame-options"] == "DENY"
        assert '<script src="/ui/static/vendor/htmx.min.js"' in answer.text
    assert (await client.get("/ui/static/vendor/sse.js")).status_code == 200
    docs = await client.get("/docs")
    assert "/docs/assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text
    assert (await client.get("/docs/assets/swagger-ui-bundle.js")).status_code == 200


async def test_filters_and_search_find_the_task(client: httpx.AsyncClient) -> None:
    done = await create(client, duration_ms=10)
    failed = await create(client, duration_ms=10, fail_at_step=1, fail_message="boom")
    await wait_for(client, done["task_id"])
    await wait_for(client, failed["task_id"])
    page = (await client.get("/ui/tasks", params={"status": "failed"})).text
    assert failed["task_id"] in page
    assert done["task_id"] not in page
    search = (await client.get("/ui/tasks", params={"q": done["task_id"][:8]})).text
    assert done["task_id"] in search
    assert failed["task_id"] not in search
    later = (utcnow() + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    assert (
        "No task matches" in (await client.get("/ui/tasks", params={"created_after": later})).text
    )
    assert (await client.get("/ui/tasks", params={"q": "not-hex!"})).status_code == 422
    detail = (await client.get(f"/ui/tasks/{failed['task_id']}")).text
    assert "boom" in detail
    assert "running" in detail


async def test_an_action_from_another_origin_is_refused(client: httpx.AsyncClient) -> None:
    task = await create(client, duration_ms=60_000)
    await wait_for(client, task["task_id"], {"running"})
    url = f"/ui/tasks/{task['task_id']}/cancel"
    for headers in ({"Origin": "http://evil.example"}, {}, {"Sec-Fetch-Site": "cross-site"}):
        refused = await client.post(url, headers=headers)
        assert refused.status_code == 403, headers
        assert refused.json()["error"]["code"] == "cross_origin"
    assert (await client.get(f"/v1/tasks/{task['task_id']}")).json()["status"] == "running"
    done = await client.post(url, headers={"Origin": ORIGIN, "HX-Request": "true"})
    assert done.status_code == 200
    assert "cancelled" in done.text
    assert (await client.get(f"/v1/tasks/{task['task_id']}")).json()["status"] == "cancelled"


def _fill(database_url: str, count: int) -> None:
    """`count` finished tasks over the last two hours, written straight to the table."""
    engine = create_engine(driver_url(database_url))
    now = utcnow()
    try:
        with engine.begin() as conn:
            for start in range(0, count, 10_000):
                rows = []
                for index in range(start, min(count, start + 10_000)):
                    created = now - timedelta(seconds=index * 7200 / count)
                    status = "failed" if index % 10 == 0 else "succeeded"
                    rows.append(
                        {
                            "task_id": str(uuid.uuid4()),
                            "algorithm": "hello",
                            "status": status,
                            "progress": 100,
                            "input": {},
                            "attempt": 1,
                            "poll_failures": 0,
                            "timeout_s": 60,
                            "created_at": created,
                            "started_at": created,
                            "finished_at": created + timedelta(seconds=1),
                            "cancel_requested": False,
                        }
                    )
                conn.execute(insert(tasks), rows)
    finally:
        engine.dispose()


@pytest.mark.slow
async def test_pages_stay_fast_with_100000_tasks(app_client, database_url: str) -> None:
    async with app_client() as client:
        await anyio.to_thread.run_sync(_fill, database_url, 100_000)
        for page, params in [
            ("/ui/overview", {}),
            ("/ui/tasks", {}),
            ("/ui/tasks", {"status": "failed", "algorithm": "hello"}),
            ("/ui/tasks", {"algorithm": "hello"}),
            ("/ui/tasks", {"q": "ab"}),
            ("/ui/replicas", {}),
            ("/ui/bulk", {"action": "retry"}),
            ("/ui/bulk", {"action": "cancel", "algorithm": "hello"}),
            ("/ui/algorithms", {}),
            ("/ui/algorithms/hello", {}),
            ("/metrics", {}),
        ]:
            started = time.perf_counter()
            answer = await client.get(page, params=params)
            elapsed_s = time.perf_counter() - started
            assert answer.status_code == 200, page
            assert elapsed_s < 2.0, f"{page} {params} took {elapsed_s:.2f} s at 100,000 tasks"
        await anyio.sleep(2.1)  # past the overview's cache
        overview = (await client.get("/ui/overview")).text
        assert ">90000<" in overview
        assert ">10000<" in overview
        pages = (await client.get("/ui/tasks", params={"status": "failed"})).text
        assert pages.count('class="mono" href="/ui/tasks/') == 50
        assert 'rel="next"' in pages
