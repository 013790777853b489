"""TASKBEAT_LOG_FORMAT=json: every line of a served process is one JSON object, and every
line about a run carries its task_id, attempt, algorithm and replica."""

import json

import httpx

from app.observe.logs import RUN_FIELDS


def test_run_lines_carry_the_run_fields(start_server, tmp_path) -> None:
    server = start_server(TASKBEAT_LOG_FORMAT="json")
    body = {"algorithm": "hello", "input": {"duration_ms": 50}}
    task_id = httpx.post(f"{server.url}/v1/tasks", json=body).json()["task_id"]
    done = httpx.get(f"{server.url}/v1/tasks/{task_id}/wait", params={"timeout_s": 10}).json()
    assert done["status"] == "succeeded"
    replica = httpx.get(f"{server.url}/readyz").json()["replica"]
    server.stop()

    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line]
    assert lines
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    # the runner's lines (access-log lines name the task in a URL, not a run)
    about_the_run = [
        line for line in lines if task_id in line["message"] and line["logger"].startswith("app.")
    ]
    assert len(about_the_run) >= 2  # started, succeeded
    for line in about_the_run:
        assert {name: line.get(name) for name in RUN_FIELDS} == {
            "task_id": task_id,
            "attempt": 1,
            "algorithm": "hello",
            "replica": replica,
        }, line
