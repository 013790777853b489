"""The dashboard in a real browser (Chromium through Playwright) against a served process:
every page loads with no console error and no request leaving 127.0.0.1, progress moves
without a reload, cancel works from the task page, and a killed replica's tasks are flagged
stale exactly as `taskbeat heartbeats` flags them; signing in with a key (a viewer sees no
buttons), signing out; pausing an algorithm and editing its policy from its page; pausing
a schedule from its page.
Screenshots land in var/screenshots/ (`make screenshots`: in docs/screenshots/)."""

import json
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from app.domain.keys import new_secret
from app.service.sessions import SESSION_COOKIE

pytestmark = pytest.mark.browser
PAGES = ("overview", "tasks", "bulk?action=retry", "algorithms", "algorithms/hello", "replicas")
LONG = {"duration_ms": 120_000, "steps": 120}


def create(url: str, **input_fields: Any) -> str:
    answer = httpx.post(f"{url}/v1/tasks", json={"algorithm": "hello", "input": input_fields})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["task_id"])


def wait_status(url: str, task_id: str, wanted: set[str], timeout_s: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        task = httpx.get(f"{url}/v1/tasks/{task_id}").json()
        if task["status"] in wanted:
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} not {wanted}: {task}")


def progress_of(page: Any, selector: str) -> int:
    return int(page.locator(selector).first.get_attribute("value") or 0)


def test_every_page_loads_clean_at_desktop_and_phone_width(start_server, open_page) -> None:
    server = start_server()
    for _ in range(4):
        create(server.url, duration_ms=50, steps=2)
    failed = create(server.url, duration_ms=50, steps=2, fail_at_step=1, fail_message="boom")
    running = create(server.url, **LONG)
    wait_status(server.url, failed, {"failed"})
    wait_status(server.url, running, {"running"})
    time.sleep(0.5)  # a few progress steps to show

    for width, suffix in ((1280, ""), (390, "-phone")):
        watched = open_page(server.url, width=width, height=900)
        page = watched.page
        for name in (*PAGES, f"tasks/{running}"):
            answer = page.goto(f"{server.url}/ui/{name}")
            assert answer is not None, name
            assert answer.status == 200, name
            assert "default-src 'self'" in answer.headers["content-security-policy"]
            page.wait_for_timeout(500)  # the live parts connect and swap
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{name} is wider than {width} px by {overflow} px"
            prefix = name[: name.find("/") + 1]
            shot = {"tasks/": "task", "algorithms/": "algorithm"}.get(prefix, name.split("?")[0])
            if not suffix or shot in ("tasks", "task"):
                watched.shoot(f"{shot}{suffix}")
        page.goto(f"{server.url}/docs")
        page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
        watched.check_clean()
    httpx.post(f"{server.url}/v1/tasks/{running}/cancel")


def test_controls_are_labelled_and_reachable_by_keyboard(start_server, open_page) -> None:
    server = start_server()
    watched = open_page(server.url)
    page = watched.page
    page.goto(f"{server.url}/ui/tasks")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input, select, button, progress, meter')]
             .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                           && !el.textContent.trim()).map(el => el.outerHTML)"""
    )
    assert unlabelled == []
    page.get_by_label("Status").select_option("succeeded")
    page.get_by_label("Status").focus()
    for _ in range(6):  # through the other filters to the button, then Enter
        if page.evaluate("document.activeElement.textContent") == "Show":
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/tasks?status=succeeded*")
    watched.check_clean()


def test_progress_moves_without_a_reload(start_server, open_page) -> None:
    server = start_server()
    task_id = create(server.url, duration_ms=20_000, steps=100)
    wait_status(server.url, task_id, {"running"})
    watched = open_page(server.url)
    page = watched.page
    for where, selector in ((f"tasks/{task_id}", "#task-progress"), ("tasks", "td.live progress")):
        page.goto(f"{server.url}/ui/{where}")
        page.evaluate("window.notReloaded = true")
        first = progress_of(page, selector)
        page.wait_for_function(
            "([selector, first]) => +document.querySelector(selector).value > first",
            arg=[selector, first],
            timeout=10_000,
        )
        assert page.evaluate("window.notReloaded") is True
        assert progress_of(page, selector) > first
    watched.check_clean()
    httpx.post(f"{server.url}/v1/tasks/{task_id}/cancel")


def test_cancel_from_the_task_page_ends_the_task(start_server, open_page) -> None:
    server = start_server()
    task_id = create(server.url, **LONG)
    wait_status(server.url, task_id, {"running"})
    watched = open_page(server.url)
    page = watched.page
    page.goto(f"{server.url}/ui/tasks/{task_id}")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Cancel task").click()
    page.wait_for_function(
        "() => document.querySelector('#task-status').textContent === 'cancelled'",
        timeout=10_000,
    )
    assert asked
    assert task_id in asked[0]
    assert httpx.get(f"{server.url}/v1/tasks/{task_id}").json()["status"] == "cancelled"
    assert page.get_by_role("button", name="Cancel task").count() == 0
    watched.check_clean()


def heartbeats_cli(env: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "app.cli", "heartbeats", "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode in (0, 2), done.stderr
    return dict(json.loads(done.stdout))


def test_a_killed_replicas_tasks_are_flagged_stale_as_the_cli_flags_them(
    start_server, open_page, serve_env
) -> None:
    # The killed replica holds a long lease, so nobody adopts its tasks during the test;
    # the viewer's lease (1 s, the test default) is the staleness limit, as for the CLI.
    doomed = start_server(TASKBEAT_LEASE_S="120")
    viewer = start_server()
    task_ids = [create(doomed.url, **LONG) for _ in range(2)]
    for task_id in task_ids:
        wait_status(doomed.url, task_id, {"running"})
    survivor = create(viewer.url, **LONG)
    wait_status(viewer.url, survivor, {"running"})
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait(timeout=10)

    watched = open_page(viewer.url)
    page = watched.page
    page.goto(f"{viewer.url}/ui/replicas")
    for task_id in task_ids:
        page.wait_for_selector(f"tr.stale[data-task='{task_id}'] .flag", timeout=15_000)
    page.wait_for_timeout(500)
    shown_stale = set(
        page.eval_on_selector_all("tr.stale[data-task]", "rows => rows.map(r => r.dataset.task)")
    )
    report = heartbeats_cli(serve_env)
    cli_stale = {beat["task_id"] for beat in report["tasks"] if beat["stale"]}
    assert shown_stale == cli_stale == set(task_ids)
    assert page.locator(f"tr[data-task='{survivor}'].stale").count() == 0
    watched.shoot("replicas-stale")
    watched.check_clean()
    httpx.post(f"{viewer.url}/v1/tasks/{survivor}/cancel")


def make_key_over_api(url: str, admin: str, role: str) -> str:
    answer = httpx.post(
        f"{url}/v1/keys",
        json={"name": f"browser-{role}", "role": role},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["secret"])


def sign_in(page: Any, secret: str) -> None:
    page.get_by_label("API key").fill(secret)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert page.locator("#signin-error").count() == 0, page.locator("#signin-error").inner_text()


def test_sign_in_with_a_key_a_viewer_sees_no_buttons_then_signs_out(
    start_server, open_page
) -> None:
    admin = new_secret()
    server = start_server(TASKBEAT_BOOTSTRAP_ADMIN_KEY=admin)
    viewer = make_key_over_api(server.url, admin, "viewer")
    as_admin = {"Authorization": f"Bearer {admin}"}
    body = {"algorithm": "hello", "input": LONG}
    task_id = httpx.post(f"{server.url}/v1/tasks", json=body, headers=as_admin).json()["task_id"]
    watched = open_page(server.url)
    page = watched.page

    page.goto(f"{server.url}/ui/tasks/{task_id}")
    assert page.url.startswith(f"{server.url}/ui/login?next=")
    watched.shoot("login")
    sign_in(page, viewer)
    assert page.url == f"{server.url}/ui/tasks/{task_id}"
    assert page.locator("header .who").inner_text().startswith("browser-viewer (viewer)")
    assert page.get_by_role("button", name="Cancel task").count() == 0
    (cookie,) = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui"
    assert viewer not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
    page.goto(f"{server.url}/ui/algorithms/hello")
    assert page.get_by_role("button", name="Pause").count() == 0
    assert page.get_by_role("button", name="Save policy").count() == 0

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/ui/login")
    page.goto(f"{server.url}/ui/overview")
    assert page.url.startswith(f"{server.url}/ui/login")
    sign_in(page, admin)
    assert page.url == f"{server.url}/ui/overview"
    page.goto(f"{server.url}/ui/tasks/{task_id}")
    assert page.get_by_role("button", name="Cancel task").count() == 1
    watched.check_clean()
    httpx.post(f"{server.url}/v1/tasks/{task_id}/cancel", headers=as_admin)


def test_pausing_an_algorithm_from_its_page_stops_new_runs(start_server, open_page) -> None:
    server = start_server()
    watched = open_page(server.url)
    page = watched.page
    page.goto(f"{server.url}/ui/algorithms/hello")
    page.get_by_role("button", name="Pause").click()
    page.wait_for_selector("#paused .waiting")
    assert httpx.get(f"{server.url}/v1/algorithms/hello").json()["paused"] is True
    task_ids = [create(server.url, duration_ms=50) for _ in range(3)]
    time.sleep(1.5)
    for task_id in task_ids:
        assert httpx.get(f"{server.url}/v1/tasks/{task_id}").json()["status"] == "pending"
    page.wait_for_function("() => document.querySelector('#waiting').textContent === '3'")
    watched.shoot("algorithm-paused")
    page.goto(f"{server.url}/ui/tasks/{task_ids[0]}")
    assert "waiting: algorithm paused" in page.locator("#task-waiting").inner_text()
    page.goto(f"{server.url}/ui/algorithms/hello")
    page.get_by_role("button", name="Resume").click()
    page.wait_for_selector("button:has-text('Pause')")
    for task_id in task_ids:
        wait_status(server.url, task_id, {"succeeded"})
    watched.check_clean()


def test_editing_max_active_from_the_page_shows_in_the_api(start_server, open_page) -> None:
    server = start_server()
    watched = open_page(server.url)
    page = watched.page
    page.goto(f"{server.url}/ui/algorithms/hello")
    page.get_by_role("textbox", name="max_active").fill("3")
    page.get_by_role("button", name="Save policy").click()
    page.wait_for_function("() => document.querySelector('#max-active').textContent === '3'")
    (hello,) = httpx.get(f"{server.url}/v1/algorithms").json()["items"]
    assert hello["max_active"] == 3

    page.get_by_role("textbox", name="max_active").fill("0")
    page.get_by_role("button", name="Save policy").click()
    alert = page.get_by_role("alert")
    assert "max_active: Input should be greater than or equal to 1" in alert.inner_text()
    typed = page.get_by_role("textbox", name="max_active").input_value()
    assert typed == "0"  # what was typed stays, to mend
    assert httpx.get(f"{server.url}/v1/algorithms/hello").json()["max_active"] == 3
    # the one console line is the browser's note of the 422 answer itself
    assert all("status of 422" in error for error in watched.errors), watched.errors
    watched.errors.clear()
    watched.check_clean()


def test_retry_from_the_task_page_and_bulk_cancel_after_its_count(start_server, open_page) -> None:
    server = start_server()
    failed = create(server.url, duration_ms=50, steps=2, fail_at_step=1, fail_message="boom")
    wait_status(server.url, failed, {"failed"})
    watched = open_page(server.url)
    page = watched.page
    page.goto(f"{server.url}/ui/tasks/{failed}")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    with page.expect_navigation():
        page.get_by_role("button", name="Retry task").click()
    assert asked
    assert failed in asked[0]
    page.wait_for_selector("#attempts tbody tr:nth-child(4)")  # three failed runs, a 4th
    assert httpx.get(f"{server.url}/v1/tasks/{failed}").json()["attempt"] >= 4

    httpx.post(f"{server.url}/v1/algorithms/hello/pause")
    waiting = [create(server.url, duration_ms=50) for _ in range(2)]
    page.goto(f"{server.url}/ui/bulk")
    page.get_by_label("Action").select_option("cancel")
    page.get_by_label("Status").select_option("pending")
    with page.expect_navigation():
        page.get_by_role("button", name="Count").click()
    act = page.get_by_role("button", name="Cancel 2 tasks")
    assert act.count() == 1
    for task_id in waiting:  # counted, not touched
        assert httpx.get(f"{server.url}/v1/tasks/{task_id}").json()["status"] == "pending"
    with page.expect_navigation():
        act.click()
    assert "Cancelled: 2" in page.locator("#bulk-done").inner_text()
    for task_id in waiting:
        assert httpx.get(f"{server.url}/v1/tasks/{task_id}").json()["status"] == "cancelled"
    watched.check_clean()
    httpx.post(f"{server.url}/v1/algorithms/hello/resume")


def test_pausing_a_schedule_from_its_page_shows_in_the_api(start_server, open_page) -> None:
    server = start_server()
    body = {"name": "often", "algorithm": "hello", "input": {"duration_ms": 50}}
    answer = httpx.post(f"{server.url}/v1/schedules", json={**body, "cron": "@every 1s"})
    assert answer.status_code == 201, answer.text
    nightly = {**body, "name": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Berlin"}
    assert httpx.post(f"{server.url}/v1/schedules", json=nightly).status_code == 201
    deadline = time.monotonic() + 10
    while len(httpx.get(f"{server.url}/v1/schedules/often").json()["recent_tasks"]) < 3:
        assert time.monotonic() < deadline, "the schedule made no three tasks in 10 s"
        time.sleep(0.1)
    watched = open_page(server.url)
    page = watched.page
    page.goto(f"{server.url}/ui/schedules")
    watched.shoot("schedules")
    page.get_by_role("link", name="often").click()
    page.wait_for_selector("#recent a.mono")
    assert page.locator("#upcoming li").count() == 5
    watched.shoot("schedule")
    page.get_by_role("button", name="Pause").click()
    page.wait_for_selector("#paused .waiting")
    assert httpx.get(f"{server.url}/v1/schedules/often").json()["paused"] is True
    assert page.locator("#upcoming").inner_text() == "None while paused."
    page.get_by_role("button", name="Resume").click()
    page.wait_for_selector("button:has-text('Pause')")
    assert httpx.get(f"{server.url}/v1/schedules/often").json()["paused"] is False
    watched.check_clean()
    phone = open_page(server.url, width=390, height=900)
    for path in ("schedules", "schedules/often"):
        phone.page.goto(f"{server.url}/ui/{path}")
        overflow = phone.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} is wider than 390 px by {overflow} px"
    phone.check_clean()
