"""Retention and DELETE: finished tasks past their retention are deleted with their events
and attempts, in bounded batches, by one replica at a time, and creates go on meanwhile."""

import statistics
import time
from datetime import timedelta
from typing import Any

import anyio
import httpx
import pytest
from conftest import AppClient
from helpers import create, eventually, wait_for
from sqlalchemy import insert, text

from app.domain.models import StoredTask, TaskStatus, new_task_id, utcnow
from app.runner.local_runs import LoopParts
from app.runner.retention import BATCH, Retention
from app.store.tables import tasks

pytestmark = pytest.mark.anyio
NEVER_S = 10 * 24 * 3600.0  # a retention no test reaches
SOAK_TASKS = 2000
SOAK_BATCH = 25
SOAK_PAUSE_S = 0.1


def context_of(client: httpx.AsyncClient) -> Any:
    return client.app.state.context  # type: ignore[attr-defined]


async def rows(client: httpx.AsyncClient, task_ids: list[str] | None = None) -> dict[str, int]:
    """Rows of tasks, task_events and task_attempts (of `task_ids`, else all)."""
    db = context_of(client).db
    quoted = ",".join(f"'{task_id}'" for task_id in task_ids or [])
    where = "" if task_ids is None else f" WHERE task_id IN ({quoted})"

    def count(conn: Any) -> dict[str, int]:
        return {
            table: int(conn.execute(text(f"SELECT count(*) FROM {table}{where}")).scalar_one())
            for table in ("tasks", "task_events", "task_attempts")
        }

    return dict(await db.read(count))


def retention_of(client: httpx.AsyncClient) -> Retention:
    context = context_of(client)
    parts = LoopParts(
        context.settings,
        context.store,
        context.live,
        context.updates,
        context.runner,
        context.replica_id,
        context.runner.metrics,
    )
    return Retention(parts)


async def test_delete_answers_204_409_404(app_client: AppClient) -> None:
    async with app_client(retention_s=NEVER_S, retention_interval_s=NEVER_S) as client:
        done = await create(client, duration_ms=10, fail_attempts=1)
        assert (await wait_for(client, done["task_id"]))["status"] == "succeeded"
        kept = await create(client, duration_ms=10)
        await wait_for(client, kept["task_id"])
        hanging = await create(client, hang=True)
        before = await rows(client, [done["task_id"]])
        assert before["task_events"] >= 4  # the test could fail: there are rows to delete
        assert before["task_attempts"] == 2

        response = await client.delete(f"/v1/tasks/{done['task_id']}")
        assert response.status_code == 204, response.text
        assert response.content == b""
        assert await rows(client, [done["task_id"]]) == {
            "tasks": 0,
            "task_events": 0,
            "task_attempts": 0,
        }
        assert (await client.get(f"/v1/tasks/{done['task_id']}")).status_code == 404
        again = await client.delete(f"/v1/tasks/{done['task_id']}")
        assert again.status_code == 404
        assert again.json()["error"]["code"] == "not_found"

        unfinished = await client.delete(f"/v1/tasks/{hanging['task_id']}")
        assert unfinished.status_code == 409
        assert "running" in unfinished.json()["error"]["message"]
        assert (await client.get(f"/v1/tasks/{hanging['task_id']}")).json()["status"] == "running"
        delayed = (
            await client.post("/v1/tasks", json={"algorithm": "hello", "delay_s": 60})
        ).json()
        assert (await client.delete(f"/v1/tasks/{delayed['task_id']}")).status_code == 409
        assert (await client.delete(f"/v1/tasks/{new_task_id()}")).status_code == 404
        assert (await client.delete("/v1/tasks/not-an-id")).status_code in (404, 422)
        # the other finished task is untouched
        assert (await rows(client, [kept["task_id"]]))["tasks"] == 1


def finished_rows(count: int, *, algorithm: str, age_s: float) -> list[dict[str, Any]]:
    at = utcnow() - timedelta(seconds=age_s)
    return [
        StoredTask(
            task_id=new_task_id(),
            algorithm=algorithm,
            status=TaskStatus.SUCCEEDED,
            timeout_s=60,
            created_at=at,
            started_at=at,
            finished_at=at,
        ).model_dump()
        for _ in range(count)
    ]


async def test_a_pass_deletes_in_bounded_batches_and_only_expired_tasks(
    app_client: AppClient,
) -> None:
    async with app_client(retention_s=3600, retention_interval_s=NEVER_S) as client:
        store = context_of(client).store
        old = finished_rows(BATCH * 2 + 7, algorithm="hello", age_s=7200)
        young = finished_rows(5, algorithm="hello", age_s=60)
        gone_engine = finished_rows(3, algorithm="retired-engine", age_s=7200)
        await store.db.write(lambda conn: conn.execute(insert(tasks), old + young + gone_engine))
        waiting = await create(client, hang=True)

        cutoff = utcnow() - timedelta(seconds=3600)
        first = await store.delete_expired(
            cutoffs={"hello": cutoff}, default_cutoff=cutoff, limit=BATCH
        )
        assert first == BATCH  # one statement never takes more than a batch
        assert (await rows(client))["tasks"] == len(old) + 5 + 3 + 1 - BATCH

        deleted = await retention_of(client).pass_once()
        assert deleted == len(old) + 3 - BATCH  # the rest, in batches, then it stops
        left = await rows(client)
        assert left["tasks"] == 5 + 1  # the young ones and the running one
        assert (await client.get(f"/v1/tasks/{waiting['task_id']}")).status_code == 200


async def test_one_replica_at_a_time(app_client: AppClient, redis_client: Any) -> None:
    async with app_client(retention_s=60, retention_interval_s=NEVER_S) as client:
        store = context_of(client).store
        expired = finished_rows(10, algorithm="hello", age_s=7200)
        await store.db.write(lambda conn: conn.execute(insert(tasks), expired))
        retention = retention_of(client)
        lock = context_of(client).live.keys.retention_lock
        await redis_client.set(lock, "another-replica", px=10_000)
        assert await retention.pass_once() == 0
        assert (await rows(client))["tasks"] == 10
        await redis_client.delete(lock)
        assert await retention.pass_once() == 10
        assert await redis_client.get(lock) is None  # released after its pass


async def test_an_algorithms_retention_s_overrides_the_default(app_client: AppClient) -> None:
    async with app_client(retention_s=NEVER_S, retention_interval_s=0.2) as client:
        for bad in (0, -1, "soon", [1]):
            answer = await client.patch("/v1/algorithms/hello", json={"retention_s": bad})
            assert answer.status_code == 422, (bad, answer.text)
            assert "retention_s" in answer.json()["error"]["message"]
        task = await create(client, duration_ms=10)
        await wait_for(client, task["task_id"])
        await anyio.sleep(1.0)
        assert (await client.get(f"/v1/tasks/{task['task_id']}")).status_code == 200
        changed = await client.patch("/v1/algorithms/hello", json={"retention_s": 0.5})
        assert changed.status_code == 200, changed.text
        assert changed.json()["retention_s"] == 0.5

        async def gone() -> bool:
            return (await client.get(f"/v1/tasks/{task['task_id']}")).status_code == 404

        await eventually(gone, timeout_s=3)
        reset = await client.patch("/v1/algorithms/hello", json={"retention_s": None})
        assert reset.json()["retention_s"] == NEVER_S


async def test_retention_keeps_the_tables_flat_and_creates_unblocked(
    app_client: AppClient,
) -> None:
    retention_s, interval_s = 2.0, 0.5
    async with app_client(retention_s=retention_s, retention_interval_s=interval_s) as client:
        latencies: list[float] = []
        samples: list[int] = []
        task_ids: list[str] = []
        done = anyio.Event()

        async def create_one() -> None:
            started = time.monotonic()
            body = {"algorithm": "hello", "input": {"duration_ms": 1}}
            response = await client.post("/v1/tasks", json=body)
            latencies.append(time.monotonic() - started)
            assert response.status_code == 202, response.text
            task_ids.append(response.json()["task_id"])

        async def sample() -> None:
            while not done.is_set():
                samples.append((await rows(client))["tasks"])
                await anyio.sleep(0.1)

        soak_started = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(sample)
            for _ in range(SOAK_TASKS // SOAK_BATCH):
                async with anyio.create_task_group() as batch:
                    for _ in range(SOAK_BATCH):
                        batch.start_soon(create_one)
                await anyio.sleep(SOAK_PAUSE_S)
            soak_s = time.monotonic() - soak_started

            async def all_gone() -> bool:
                return (await rows(client))["tasks"] == 0

            await eventually(all_gone, timeout_s=retention_s + 30, interval_s=0.2)
            done.set()
        assert len(task_ids) == SOAK_TASKS
        assert soak_s > 2 * retention_s  # deletes ran while tasks were created
        # bounded: never near all of them at once (what retention_s plus a pass allow)
        assert max(samples) < SOAK_TASKS * 0.8, (max(samples), soak_s)
        # a create waits for at most one short delete batch: well under 2 s more than the
        # machine's own pace for a batch of concurrent creates (2 cores, shared with others)
        pace_s = 2 * statistics.median(latencies)
        assert max(latencies) < 1.5 + pace_s, (sorted(latencies)[-5:], pace_s, soak_s)
        assert await rows(client) == {"tasks": 0, "task_events": 0, "task_attempts": 0}
