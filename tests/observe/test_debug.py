"""/debug: 404 unless TASKBEAT_DEBUG_ENDPOINTS=true; then a CPU profile, tasks, loop lag."""

import json

import pytest

pytestmark = pytest.mark.anyio
PAGES = ("/debug/profile?seconds=0.1", "/debug/tasks", "/debug/lag")


async def test_debug_pages_are_not_found_by_default(app_client) -> None:
    async with app_client() as client:
        for page in PAGES:
            answer = await client.get(page)
            assert answer.status_code == 404, page
            assert answer.json()["error"]["code"] == "not_found"


async def test_a_profile_the_running_tasks_and_the_lag_when_enabled(app_client) -> None:
    async with app_client(debug_endpoints=True) as client:
        html = await client.get("/debug/profile", params={"seconds": 0.3})
        assert html.status_code == 200
        assert html.headers["content-type"].startswith("text/html")
        assert "pyinstrument" in html.text.lower()
        speedscope = await client.get(
            "/debug/profile", params={"seconds": 0.2, "format": "speedscope"}
        )
        assert speedscope.status_code == 200
        profile = json.loads(speedscope.text)
        assert profile["$schema"].startswith("https://www.speedscope.app/")
        assert profile["profiles"]
        assert profile["shared"]["frames"]

        tasks = (await client.get("/debug/tasks")).json()
        assert tasks["count"] == len(tasks["items"]) > 0
        assert any("heartbeat" in item["stack"] for item in tasks["items"])

        lag = (await client.get("/debug/lag")).json()
        assert lag["summary_ms"]["samples"] > 0
        assert lag["seconds"]
        assert {"at", "max_ms", "samples"} <= set(lag["seconds"][-1])

        assert (await client.get("/debug/profile", params={"seconds": 600})).status_code == 422
