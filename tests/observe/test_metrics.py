"""/metrics after a known workload: its counters equal what the API counts, its histograms
counted every run, and its HTTP series are labelled by route template, never by task id."""

from typing import Any

import anyio
import httpx
import pytest
from helpers import create, wait_for
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.anyio
SUCCEEDED, FAILED, CANCELLED = 20, 3, 2


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from the Prometheus text format."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(found: dict[Any, float], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and wanted <= set(ls))


async def test_counters_and_histograms_match_a_known_workload(
    client: httpx.AsyncClient,
) -> None:
    done = [await create(client, duration_ms=50, steps=2) for _ in range(SUCCEEDED)]
    failing = [
        await create(client, duration_ms=50, steps=2, fail_at_step=1, fail_message="boom")
        for _ in range(FAILED)
    ]
    slow = [await create(client, duration_ms=60_000, steps=60) for _ in range(CANCELLED)]
    for task in slow:
        await wait_for(client, task["task_id"], {"running"})
        assert (await client.post(f"/v1/tasks/{task['task_id']}/cancel")).status_code == 202
    finals = [await wait_for(client, t["task_id"]) for t in done + failing + slow]
    assert [t["status"] for t in finals] == (
        ["succeeded"] * SUCCEEDED + ["failed"] * FAILED + ["cancelled"] * CANCELLED
    )

    answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    found = samples(answer.text)
    totals = (await client.get("/v1/stats")).json()["totals"]
    for status in ("succeeded", "failed", "cancelled"):
        counted = total(found, "taskbeat_tasks_finished_total", algorithm="hello", status=status)
        assert counted == totals[status], status
    assert total(found, "taskbeat_tasks_created_total", algorithm="hello") == 25
    assert total(found, "taskbeat_task_attempts_total", algorithm="hello", cause="new") == 25
    assert total(found, "taskbeat_task_wait_seconds_count", algorithm="hello") == 25
    # a failed task is retried (retry_on has "failed"): each of its runs is counted
    failed_runs = sum(task["attempt"] for task in finals if task["status"] == "failed")
    assert failed_runs > FAILED
    retries = total(found, "taskbeat_task_attempts_total", algorithm="hello", cause="retry")
    assert retries == failed_runs - FAILED
    for status, count in (("succeeded", 20), ("failed", failed_runs), ("cancelled", 2)):
        runs = total(found, "taskbeat_task_run_seconds_count", algorithm="hello", status=status)
        assert runs == count, status
    # 60 s jobs cancelled at once: every cancelled run sits in the buckets under 60 s
    fast_cancels = total(
        found, "taskbeat_task_run_seconds_bucket", algorithm="hello", status="cancelled", le="30.0"
    )
    assert fast_cancels == CANCELLED
    assert total(found, "taskbeat_tasks_running", algorithm="hello") == 0
    assert total(found, "taskbeat_tasks_waiting", algorithm="hello") == 0
    assert total(found, "taskbeat_algorithm_paused", algorithm="hello") == 0
    assert total(found, "taskbeat_event_loop_lag_seconds_count") > 0
    assert 0 <= total(found, "taskbeat_replica_lease_age_seconds") < 5

    reads = total(found, "taskbeat_http_requests_total", route="/v1/tasks/{task_id}", method="GET")
    assert reads >= len(finals)
    assert total(found, "taskbeat_http_requests_total", route="/v1/tasks", status="202") == 25
    cancels = total(
        found, "taskbeat_http_requests_total", route="/v1/tasks/{task_id}/cancel", status="202"
    )
    assert cancels == CANCELLED
    labels = {value for (_, ls) in found for _, value in ls}
    assert not any(task["task_id"] in label for task in finals for label in labels)


async def test_running_and_heartbeat_gauges_follow_a_run(client: httpx.AsyncClient) -> None:
    task = await create(client, duration_ms=60_000, steps=60)
    await wait_for(client, task["task_id"], {"running"})
    await anyio.sleep(0.5)  # a few heartbeats (0.2 s apart in tests)
    found = samples((await client.get("/metrics")).text)
    assert total(found, "taskbeat_tasks_running", algorithm="hello") == 1
    assert 0 <= total(found, "taskbeat_heartbeat_age_seconds_max") < 2
    await client.post(f"/v1/tasks/{task['task_id']}/cancel")


async def test_an_unknown_path_is_one_series_not_one_per_path(client: httpx.AsyncClient) -> None:
    for index in range(3):
        assert (await client.get(f"/no/such/{index}")).status_code == 404
    found = samples((await client.get("/metrics")).text)
    assert total(found, "taskbeat_http_requests_total", route="unmatched", status="404") == 3
    assert not any("/no/such" in value for (_, ls) in found for _, value in ls)
