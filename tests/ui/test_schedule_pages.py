"""The dashboard's schedule pages over HTTP: the list (cadence, next tick, paused, last
tick, overlap), a schedule's page (its next five ticks, the tasks it made with their
status, linked), pause and resume through the service the API uses; a viewer sees no
buttons and is refused them; an unknown schedule is a 404."""

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import httpx
import pytest
from conftest import AppClient
from keyring import make_key

from app.domain.keys import Role

pytestmark = pytest.mark.anyio
ORIGIN = {"Origin": "http://taskbeat"}
FORM = {**ORIGIN, "Content-Type": "application/x-www-form-urlencoded"}
NIGHTLY: dict[str, Any] = {
    "name": "nightly",
    "algorithm": "hello",
    "input": {"duration_ms": 10},
    "cron": "30 2 * * *",
    "timezone": "Europe/Berlin",
}


async def make(client: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    answer = await client.post("/v1/schedules", json={**NIGHTLY, **changes})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def shown(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/schedules/{name}")
    assert answer.status_code == 200
    return dict(answer.json())


async def test_the_list_shows_each_schedule_with_its_next_tick(client: httpx.AsyncClient) -> None:
    empty = await client.get("/ui/schedules")
    assert empty.status_code == 200
    assert "No schedule yet" in empty.text
    created = await make(client)
    await make(client, name="held", cron="@every 5m", overlap="allow", paused=True)
    page = (await client.get("/ui/schedules")).text
    assert 'href="/ui/schedules/nightly"' in page
    assert 'href="/ui/schedules/held"' in page
    assert "<code>30 2 * * *</code> in Europe/Berlin" in page
    next_fire = datetime.fromisoformat(created["next_fire_at"])
    assert next_fire.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") in page
    assert page.count('<strong class="waiting">paused</strong>') == 1
    assert "<td>allow</td>" in page
    assert 'href="/ui/schedules"' in page  # in the nav
    assert 'aria-current="page">Schedules<' in page


async def test_the_page_lists_the_next_five_ticks(client: httpx.AsyncClient) -> None:
    created = await make(client)
    page = (await client.get("/ui/schedules/nightly")).text
    listed = page[page.index('id="upcoming"') : page.index("</ol>", page.index('id="upcoming"'))]
    ticks = [datetime.fromisoformat(t.split('"')[0]) for t in listed.split('datetime="')[1:]]
    assert len(ticks) == 5
    assert ticks[0] == datetime.fromisoformat(created["next_fire_at"])
    for tick in ticks:  # 02:30 in Berlin, on five days in a row
        berlin = tick.astimezone(ZoneInfo("Europe/Berlin"))
        assert (berlin.hour, berlin.minute, berlin.second) == (2, 30, 0), tick
    for before, after in itertools.pairwise(ticks):
        assert timedelta(hours=23) <= after - before <= timedelta(hours=25)
    assert "No task yet." in page


async def test_pause_and_resume_from_the_page_show_in_the_api(client: httpx.AsyncClient) -> None:
    await make(client, name="often", cron="@every 1s", overlap="allow")
    with anyio.fail_after(10):
        while True:
            made = (await shown(client, "often"))["recent_tasks"]
            if made:
                break
            await anyio.sleep(0.1)
    page = (await client.get("/ui/schedules/often")).text
    assert f'href="/ui/tasks/{made[0]["task_id"]}"' in page
    assert ">Pause<" in page

    paused = await client.post("/ui/schedules/often/pause", headers=FORM)
    assert paused.status_code == 303
    assert paused.headers["location"] == "/ui/schedules/often"
    after = await shown(client, "often")
    assert after["paused"] is True
    page = (await client.get("/ui/schedules/often")).text
    assert ">Resume<" in page
    assert "None while paused." in page
    for task in after["recent_tasks"]:
        assert f">{task['status']}</span>" in page

    assert (await client.post("/ui/schedules/often/resume", headers=FORM)).status_code == 303
    assert (await shown(client, "often"))["paused"] is False
    assert ">Pause<" in (await client.get("/ui/schedules/often")).text


async def test_an_unknown_schedule_is_404_and_a_foreign_post_403(
    client: httpx.AsyncClient,
) -> None:
    for name in ("nope", "no%20such", "x" * 80):
        assert (await client.get(f"/ui/schedules/{name}")).status_code == 404, name
        refused = await client.post(f"/ui/schedules/{name}/pause", headers=FORM)
        assert refused.status_code == 404, name
    await make(client)
    foreign = {"Origin": "http://evil.example", "Content-Type": FORM["Content-Type"]}
    refused = await client.post("/ui/schedules/nightly/pause", headers=foreign)
    assert refused.status_code == 403
    assert (await shown(client, "nightly"))["paused"] is False


async def test_a_viewer_sees_no_buttons_and_is_refused_them(app_client: AppClient) -> None:
    async with app_client(auth="on") as client:
        _, admin = await make_key(client, Role.ADMIN)
        answer = await client.post(
            "/v1/schedules", json=NIGHTLY, headers={"Authorization": f"Bearer {admin}"}
        )
        assert answer.status_code == 201, answer.text
        _, viewer = await make_key(client, Role.VIEWER)
        assert (
            await client.post("/ui/login", data={"key": viewer}, headers=FORM)
        ).status_code == 303
        page = (await client.get("/ui/schedules/nightly")).text
        assert "30 2 * * *" in page
        assert ">Pause<" not in page
        assert '<form method="post" action="/ui/schedules' not in page
        for action in ("pause", "resume"):
            refused = await client.post(f"/ui/schedules/nightly/{action}", headers=FORM)
            assert refused.status_code == 403, action
            assert refused.json()["error"]["code"] == "forbidden"
