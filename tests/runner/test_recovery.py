"""Tasks whose replica died: the sweeper re-runs them, or fails them visibly once their
attempts are used up, and honours a cancel recorded while nobody held them."""

from datetime import timedelta

import anyio
import httpx
import pytest
import redis.asyncio as aioredis
from helpers import create, eventually, wait_for
from sqlalchemy import text

from app.domain.models import StoredTask, TaskStatus, new_task_id, utcnow
from app.domain.policy import Policy
from app.runner import sweeper as recovery

pytestmark = pytest.mark.anyio
HELLO = Policy(name="hello")


DEAD = "dead-replica-1"


async def orphan(client: httpx.AsyncClient, *, lease_s: float | None = -5, **fields: object) -> str:
    """A task row as a replica that died mid-run leaves it: owner gone, its lease lapsed
    `-lease_s` seconds ago (lease_s None: it never had one)."""
    store = client.app.state.context.store  # type: ignore[attr-defined]
    if lease_s is not None:
        lease_until = utcnow() + timedelta(seconds=lease_s)
        await store.renew_lease(replica_id=DEAD, lease_until=lease_until)
    values: dict[str, object] = {
        "task_id": new_task_id(),
        "algorithm": "hello",
        "status": TaskStatus.RUNNING,
        "input": {"duration_ms": 100},
        "timeout_s": 60,
        "created_at": utcnow(),
        "started_at": utcnow(),
        "attempt": 1,
        "max_attempts": 3,
        "owner": DEAD,
    }
    values.update(fields)
    task = StoredTask.model_validate(values)
    await store.insert_task(task=task)
    return task.task_id


async def test_a_lost_running_task_is_rerun_as_a_new_attempt(client: httpx.AsyncClient) -> None:
    task_id = await orphan(client)
    task = await wait_for(client, task_id)
    assert task["status"] == "succeeded"
    assert task["attempt"] == 2


async def test_a_lost_pending_task_is_taken_over(client: httpx.AsyncClient) -> None:
    task_id = await orphan(client, status=TaskStatus.PENDING, attempt=0, started_at=None)
    task = await wait_for(client, task_id)
    assert task["status"] == "succeeded"
    assert task["attempt"] == 1


async def test_a_lost_task_with_no_attempts_left_fails_visibly(
    client: httpx.AsyncClient,
) -> None:
    task_id = await orphan(client, attempt=3)
    task = await wait_for(client, task_id)
    assert task["status"] == "failed"
    assert DEAD in task["error"]
    assert "3 attempts" in task["error"]
    assert task["attempt"] == 3


async def test_a_cancel_recorded_while_unowned_wins(client: httpx.AsyncClient) -> None:
    task_id = await orphan(client, cancel_requested=True)
    task = await wait_for(client, task_id)
    assert task["status"] == "cancelled"


async def test_a_live_lease_is_left_alone(client: httpx.AsyncClient) -> None:
    task_id = await orphan(client, lease_s=30)
    await wait_for(client, task_id, {"pending", "running"})
    await anyio.sleep(0.6)  # three sweeps at the tests' 0.2 s interval
    task = (await client.get(f"/v1/tasks/{task_id}")).json()
    assert task["status"] == "running"
    assert task["attempt"] == 1


async def test_the_transition_log_shows_a_rerun_finishing_once(
    client: httpx.AsyncClient,
) -> None:
    task_id = await orphan(client)
    await wait_for(client, task_id)
    store = client.app.state.context.store  # type: ignore[attr-defined]
    replica = client.app.state.context.replica_id  # type: ignore[attr-defined]
    history = [
        (e.from_status, e.to_status, e.replica, e.attempt)
        for e in await store.task_history(task_id=task_id)
    ]
    assert history == [
        (None, "running", DEAD, 1),
        ("running", "pending", replica, 1),
        ("pending", "running", replica, 2),
        ("running", "succeeded", replica, 2),
    ]


async def test_a_replica_that_lost_its_task_stops_and_writes_nothing(
    client: httpx.AsyncClient, redis_client: "aioredis.Redis", redis_prefix: str
) -> None:
    context = client.app.state.context  # type: ignore[attr-defined]
    created = await create(client, hang=True)
    task_id = created["task_id"]
    await wait_for(client, task_id, {"running"})
    # Another replica takes the task over (as after a partition longer than the lease).
    lease_until = utcnow() + timedelta(seconds=30)
    await context.store.renew_lease(replica_id="other-replica", lease_until=lease_until)
    await context.db.write(
        lambda conn: conn.execute(
            text("UPDATE tasks SET owner = 'other-replica', attempt = 2 WHERE task_id = :id"),
            {"id": task_id},
        )
    )

    async def run_stopped() -> bool:
        return context.runner.local_run(task_id) is None

    await eventually(run_stopped, timeout_s=3)
    await anyio.sleep(0.5)  # more heartbeats: still nothing written by this replica
    task = await context.store.get_task(task_id=task_id)
    assert task is not None
    assert task.status is TaskStatus.RUNNING
    assert task.owner == "other-replica"
    assert task.attempt == 2
    history = await context.store.task_history(task_id=task_id)
    assert [e.to_status for e in history] == ["pending", "running"]
    assert await redis_client.get(f"{redis_prefix}active:hello") == "0"


async def test_a_task_whose_owner_never_had_a_lease_is_taken_over(
    client: httpx.AsyncClient,
) -> None:
    task_id = await orphan(client, lease_s=None)
    task = await wait_for(client, task_id)
    assert task["status"] == "succeeded"
    assert task["attempt"] == 2


async def seen_by_a_sweeper(client: httpx.AsyncClient) -> StoredTask:
    """An orphan as a sweeper read it, this replica's own sweeper kept out of the way."""
    context = client.app.state.context  # type: ignore[attr-defined]
    await context.runner.drain(0)
    task_id = await orphan(client)
    (seen,) = [task for task in await context.store.expired_tasks() if task.task_id == task_id]
    return seen


async def test_a_replica_that_renews_before_the_takeover_keeps_its_tasks(
    client: httpx.AsyncClient,
) -> None:
    context = client.app.state.context  # type: ignore[attr-defined]
    seen = await seen_by_a_sweeper(client)  # the sweeper saw the lease lapsed...
    task_id = seen.task_id
    lease_until = utcnow() + timedelta(seconds=30)
    await context.store.renew_lease(replica_id=DEAD, lease_until=lease_until)  # ...it came back
    plan = recovery.plan_for(seen, replica_id="sweeper", policy=HELLO)
    assert await context.store.take_over(plans=[plan], replica="sweeper") == []
    task = await context.store.get_task(task_id=task_id)
    assert task is not None
    assert (task.status, task.owner, task.attempt) == (TaskStatus.RUNNING, DEAD, 1)


async def test_a_lapsed_replica_left_holding_nothing_is_forgotten(
    client: httpx.AsyncClient,
) -> None:
    context = client.app.state.context  # type: ignore[attr-defined]
    task_id = await orphan(client)
    await wait_for(client, task_id)
    leases = await context.db.read(
        lambda conn: conn.execute(text("SELECT replica_id FROM replicas")).scalars().all()
    )
    assert leases == [context.replica_id]  # the dead replica's row went with its last task


async def test_a_running_task_this_replica_does_not_run_is_handed_back_and_rerun(
    client: httpx.AsyncClient,
) -> None:
    # As a start whose answer was lost, or an outcome the database never took, leaves it:
    # the row says this live replica runs it, but no run of it is here.
    context = client.app.state.context  # type: ignore[attr-defined]
    task_id = await orphan(client, lease_s=None, owner=context.replica_id)
    task = await wait_for(client, task_id, timeout_s=10)
    assert (task["status"], task["attempt"]) == ("succeeded", 2)
    history = await context.store.task_history(task_id=task_id)
    handed = [e for e in history if (e.from_status, e.to_status) == ("running", "pending")]
    assert [e.replica for e in handed] == [context.replica_id]


async def test_the_tasks_the_sweeper_ends_are_counted_as_finished(
    client: httpx.AsyncClient,
) -> None:
    def finished(text: str, status: str) -> float:
        line = f'taskbeat_tasks_finished_total{{algorithm="hello",status="{status}"}} '
        found = [row for row in text.splitlines() if row.startswith(line)]
        return float(found[0].split()[-1]) if found else 0.0

    before = (await client.get("/metrics")).text
    used_up = [await orphan(client, attempt=3) for _ in range(2)]
    asked = await orphan(client, cancel_requested=True)
    for task_id in used_up:
        assert (await wait_for(client, task_id))["status"] == "failed"
    assert (await wait_for(client, asked))["status"] == "cancelled"
    after = (await client.get("/metrics")).text
    assert finished(after, "failed") - finished(before, "failed") == 2
    assert finished(after, "cancelled") - finished(before, "cancelled") == 1
