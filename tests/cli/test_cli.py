"""The `taskbeat` CLI as a user runs it: a subprocess against a real `taskbeat serve`."""

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from serve_process import free_port

pytestmark = pytest.mark.slow

# Short beats and lease so that a stale heartbeat shows within seconds; the lease is not
# 3 beats, so the monitor shows it reads TASKBEAT_LEASE_S as the service does.
BEATS = {"TASKBEAT_HEARTBEAT_INTERVAL_S": "0.5", "TASKBEAT_LEASE_S": "2"}


def taskbeat(
    env: dict[str, str], *args: str, timeout_s: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def parsed(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def served(start_server: Any, serve_env: dict[str, str]) -> dict[str, str]:
    """The environment of a CLI pointed at a fresh server (and its Redis)."""
    server = start_server(**BEATS)
    return {**serve_env, **BEATS, "TASKBEAT_URL": server.url}


def test_create_wait_prints_the_result(served: dict[str, str]) -> None:
    result = taskbeat(
        served, "tasks", "create", "hello", "--input", '{"duration_ms":500}', "--wait"
    )
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout
    assert "hello world" in result.stdout
    assert "\r" not in result.stdout  # no progress bar when stdout is not a terminal


def test_get_list_cancel_stats_as_json(served: dict[str, str]) -> None:
    created = parsed(
        taskbeat(served, "tasks", "create", "hello", "--input", '{"hang":true}', "--json")
    )
    task_id = created["task_id"]
    assert created["status"] in ("pending", "running")
    assert parsed(taskbeat(served, "tasks", "get", task_id, "--json"))["task_id"] == task_id

    listed = parsed(
        taskbeat(served, "tasks", "list", "--algorithm", "hello", "--limit", "5", "--json")
    )
    assert [t["task_id"] for t in listed["items"]] == [task_id]
    assert listed["next_cursor"] is None

    cancelled = parsed(taskbeat(served, "tasks", "cancel", task_id, "--json"))
    assert cancelled["status"] == "cancelled"
    waited = parsed(taskbeat(served, "tasks", "wait", task_id, "--timeout-s", "5", "--json"))
    assert waited["status"] == "cancelled"
    stats = parsed(taskbeat(served, "stats", "--json"))
    assert stats["totals"]["cancelled"] == 1
    assert stats["active"] == {"hello": 0}

    again = taskbeat(served, "tasks", "cancel", task_id)
    assert again.returncode == 1
    assert "409 conflict" in again.stderr
    assert again.stdout == ""
    unknown = taskbeat(served, "tasks", "get", "no-such-task")
    assert (unknown.returncode, unknown.stderr.strip()) == (
        1,
        "taskbeat: 404 not_found: no task no-such-task",
    )

    table = taskbeat(served, "tasks", "list", "--status", "cancelled")
    header, rule, row = table.stdout.splitlines()
    assert header.split() == ["TASK_ID", "ALGORITHM", "STATUS", "PROGRESS", "CREATED_AT", "ERROR"]
    assert set(rule.replace(" ", "")) == {"─"}
    assert row.split()[:3] == [task_id, "hello", "cancelled"]
    assert "\x1b[" not in table.stdout  # no colours when piped


def test_create_delayed_then_delete(served: dict[str, str]) -> None:
    created = parsed(
        taskbeat(served, "tasks", "create", "hello", "--delay", "1", "--input", "{}", "--json")
    )
    assert created["status"] == "pending"
    assert created["run_at"] is not None
    task_id = created["task_id"]
    unfinished = taskbeat(served, "tasks", "delete", task_id)
    assert unfinished.returncode == 1
    assert "409 conflict" in unfinished.stderr
    waited = parsed(taskbeat(served, "tasks", "wait", task_id, "--timeout-s", "10", "--json"))
    assert waited["status"] == "succeeded"
    deleted = taskbeat(served, "tasks", "delete", task_id)
    assert (deleted.returncode, deleted.stdout.strip()) == (0, f"deleted {task_id}")
    assert taskbeat(served, "tasks", "get", task_id).returncode == 1

    day = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    at = parsed(
        taskbeat(served, "tasks", "create", "hello", "--run-at", f"{day}T03:04:05+02:00", "--json")
    )
    assert at["run_at"].startswith(f"{day}T01:04:05")
    both = taskbeat(served, "tasks", "create", "hello", "--run-at", "x", "--delay", "1")
    assert both.returncode == 2  # argparse: not both
    naive = taskbeat(served, "tasks", "create", "hello", "--run-at", "2031-01-02T03:04:05")
    assert naive.returncode == 1
    assert "422" in naive.stderr


def test_wait_that_runs_out_of_time_exits_1(served: dict[str, str]) -> None:
    task_id = parsed(
        taskbeat(served, "tasks", "create", "hello", "--input", '{"hang":true}', "--json")
    )["task_id"]
    result = taskbeat(served, "tasks", "wait", task_id, "--timeout-s", "0.5")
    assert result.returncode == 1
    assert "still running after 0.5 s" in result.stderr
    assert taskbeat(served, "tasks", "cancel", task_id).returncode == 0


def test_heartbeats_healthy_then_stale_after_sigkill(
    start_server: Any, serve_env: dict[str, str]
) -> None:
    server = start_server(**BEATS)
    env = {**serve_env, **BEATS, "TASKBEAT_URL": server.url}
    task_id = parsed(
        taskbeat(env, "tasks", "create", "hello", "--input", '{"hang":true}', "--json")
    )["task_id"]

    deadline = time.monotonic() + 10
    healthy = taskbeat(env, "heartbeats")
    while task_id not in healthy.stdout and time.monotonic() < deadline:
        time.sleep(0.1)
        healthy = taskbeat(env, "heartbeats")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    row = next(line for line in healthy.stdout.splitlines() if line.startswith(task_id))
    assert row.split()[-1] == "ok"
    assert healthy.stdout.splitlines()[-1].startswith("OK: 1 task running")

    replica = parsed(taskbeat(env, "stats", "--json"))["replica"]["id"]
    assert replica in row
    server.stop(signal.SIGKILL)

    deadline = time.monotonic() + 15
    stale = taskbeat(env, "heartbeats")
    while stale.returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        stale = taskbeat(env, "heartbeats")
    assert stale.returncode == 2, stale.stdout + stale.stderr
    assert "STALE" in stale.stdout
    row = next(line for line in stale.stdout.splitlines() if line.startswith(task_id))
    assert row.split()[-1] == "STALE"
    assert replica in row
    assert stale.stdout.splitlines()[-1].startswith("STALE: 1 of 1 task")

    report = json.loads(taskbeat(env, "heartbeats", "--json").stdout)
    assert report["ok"] is False
    assert report["stale_after_s"] == 2.0
    assert [(t["task_id"], t["replica"], t["stale"]) for t in report["tasks"]] == [
        (task_id, replica, True)
    ]


def test_unreachable_server_and_redis_exit_3(serve_env: dict[str, str]) -> None:
    env = {**serve_env, "TASKBEAT_URL": f"http://127.0.0.1:{free_port()}"}
    api = taskbeat(env, "tasks", "list")
    assert api.returncode == 3
    assert "cannot reach taskbeat" in api.stderr
    redis = taskbeat(env, "heartbeats", "--redis-url", f"redis://127.0.0.1:{free_port()}/0")
    assert redis.returncode == 3
    assert "cannot read Redis" in redis.stderr
    unset = taskbeat({**env, "TASKBEAT_REDIS_URL": ""}, "heartbeats")
    assert unset.returncode == 3
    assert "TASKBEAT_REDIS_URL" in unset.stderr


def test_algorithms_list_show_set_pause_resume(served: dict[str, str]) -> None:
    (hello,) = parsed(taskbeat(served, "algorithms", "list", "--json"))["items"]
    assert (hello["name"], hello["running"], hello["waiting"]) == ("hello", 0, 0)
    changed = parsed(
        taskbeat(
            served, "algorithms", "set", "hello", "max_active=2", 'retry_on=["lost"]', "--json"
        )
    )
    assert (changed["max_active"], changed["retry_on"]) == (2, ["lost"])
    assert parsed(taskbeat(served, "algorithms", "show", "hello", "--json"))["max_active"] == 2
    paused = parsed(taskbeat(served, "algorithms", "pause", "hello", "--for", "60", "--json"))
    assert paused["paused"] is True
    assert paused["paused_until"]
    assert parsed(taskbeat(served, "algorithms", "resume", "hello", "--json"))["paused"] is False
    bad = taskbeat(served, "algorithms", "set", "hello", "max_active=0")
    assert bad.returncode == 1
    assert "max_active" in bad.stderr
    human = taskbeat(served, "algorithms", "list")
    assert "MAX_ACTIVE" in human.stdout
    assert "hello" in human.stdout


def test_schedules_create_list_show_set_pause_resume_delete(served: dict[str, str]) -> None:
    created = parsed(
        taskbeat(
            served,
            *("schedules", "create", "beat", "hello", "@every 1s"),
            *("--input", '{"duration_ms": 10}', "--overlap", "allow", "--priority", "3", "--json"),
        )
    )
    assert (created["name"], created["cron"], created["priority"]) == ("beat", "@every 1s", 3)
    (listed,) = parsed(taskbeat(served, "schedules", "list", "--json"))["items"]
    assert listed["name"] == "beat"
    for _ in range(100):  # 10 s at most
        shown = parsed(taskbeat(served, "schedules", "show", "beat", "--json"))
        if shown["recent_tasks"]:
            break
        time.sleep(0.1)
    assert shown["recent_tasks"], shown
    made = parsed(taskbeat(served, "tasks", "list", "--schedule", "beat", "--json"))["items"]
    assert made
    assert all(task["schedule"] == "beat" for task in made)
    changed = parsed(taskbeat(served, "schedules", "set", "beat", "cron=@every 5m", "--json"))
    assert changed["cron"] == "@every 5m"
    assert parsed(taskbeat(served, "schedules", "pause", "beat", "--json"))["paused"] is True
    assert parsed(taskbeat(served, "schedules", "resume", "beat", "--json"))["paused"] is False
    bad = taskbeat(served, "schedules", "set", "beat", "timezone=Nowhere/Here")
    assert bad.returncode == 1
    assert "timezone" in bad.stderr
    human = taskbeat(served, "schedules", "show", "beat")
    assert "next_fire_at" in human.stdout
    assert "TASK_ID" in human.stdout
    assert taskbeat(served, "schedules", "delete", "beat").returncode == 0
    missing = taskbeat(served, "schedules", "show", "beat")
    assert missing.returncode == 1


def test_idempotent_create_retry_and_bulk(served: dict[str, str]) -> None:
    create = ("tasks", "create", "hello", "--input", '{"hang":true}', "--json")
    first = parsed(taskbeat(served, *create, "--idempotency-key", "cli-1"))
    again = parsed(taskbeat(served, *create, "--idempotency-key", "cli-1"))
    assert again["task_id"] == first["task_id"]
    other = parsed(taskbeat(served, *create))
    assert other["task_id"] != first["task_id"]

    early = taskbeat(served, "tasks", "retry", first["task_id"])
    assert early.returncode == 1
    assert "409 conflict" in early.stderr

    cancelled = parsed(taskbeat(served, "bulk", "cancel", "--algorithm", "hello", "--json"))
    assert cancelled == {"matched": 2, "changed": 2}
    shown = taskbeat(served, "bulk", "cancel", "--status", "running")
    assert shown.returncode == 0, shown.stderr
    assert "matched" in shown.stdout
    for task_id in (first["task_id"], other["task_id"]):
        waited = parsed(taskbeat(served, "tasks", "wait", task_id, "--timeout-s", "5", "--json"))
        assert waited["status"] == "cancelled"

    rerun = parsed(taskbeat(served, "tasks", "retry", first["task_id"], "--json"))
    assert rerun["status"] in ("pending", "running")
    retried = parsed(taskbeat(served, "bulk", "retry", "--status", "cancelled", "--json"))
    assert retried == {"matched": 1, "changed": 1}
    parsed(taskbeat(served, "bulk", "cancel", "--json"))
