"""A cancel that races a takeover is never lost: whichever of the two commits first, the
task ends cancelled, once."""

from datetime import timedelta

import httpx
import pytest
from helpers import eventually, holding_lock, wait_for
from sqlalchemy import text

from app.domain.models import TaskEvent, TaskStatus, utcnow
from app.domain.policy import Policy
from app.runner import sweeper as recovery
from runner.test_recovery import DEAD, orphan, seen_by_a_sweeper

pytestmark = pytest.mark.anyio
HELLO = Policy(name="hello")


def _finishes(events: list[TaskEvent]) -> list[str]:
    return [e.to_status for e in events if e.to_status not in ("pending", "running")]


async def test_a_cancel_after_the_sweeper_looked_is_honoured_by_the_next_sweep(
    client: httpx.AsyncClient,
) -> None:
    context = client.app.state.context  # type: ignore[attr-defined]
    seen = await seen_by_a_sweeper(client)
    task_id = seen.task_id
    assert await context.store.request_cancel(task_id=task_id)  # meanwhile, elsewhere
    plan = recovery.plan_for(seen, replica_id="sweeper", policy=HELLO)
    assert plan.to_status is TaskStatus.PENDING  # planned from what it saw
    assert await context.store.take_over(plans=[plan], replica="sweeper") == []
    (again,) = [task for task in await context.store.expired_tasks() if task.task_id == task_id]
    replan = recovery.plan_for(again, replica_id="sweeper", policy=HELLO)
    applied = await context.store.take_over(plans=[replan], replica="sweeper")
    assert [p.to_status for p in applied] == [TaskStatus.CANCELLED]


async def test_a_cancel_after_the_takeover_committed_ends_the_task_at_its_start(
    client: httpx.AsyncClient,
) -> None:
    context = client.app.state.context  # type: ignore[attr-defined]
    seen = await seen_by_a_sweeper(client)
    task_id = seen.task_id
    lease_until = utcnow() + timedelta(seconds=30)
    await context.store.renew_lease(replica_id="sweeper", lease_until=lease_until)
    plan = recovery.plan_for(seen, replica_id="sweeper", policy=HELLO)
    assert await context.store.take_over(plans=[plan], replica="sweeper") == [plan]
    # The cancel read the task as running; it finds it back in the queue and ends it there.
    assert await context.store.request_cancel(task_id=task_id)
    ended = await context.store.get_task(task_id=task_id)
    assert ended is not None
    assert ended.status is TaskStatus.CANCELLED
    events = await context.store.task_history(task_id=task_id)
    assert [(e.from_status, e.to_status) for e in events][-2:] == [
        ("running", "pending"),
        ("pending", "cancelled"),
    ]
    claim = await context.store.claim(owner="sweeper", base={"hello": HELLO}, slots=10)
    assert task_id not in [task.task_id for task in claim.started]


async def test_a_cancel_sent_while_the_takeover_is_held_open_ends_cancelled(
    client: httpx.AsyncClient, database_url: str
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite has one write lock: a cancel cannot interleave a takeover there")
    context = client.app.state.context  # type: ignore[attr-defined]
    lapsed = utcnow() - timedelta(seconds=5)
    await context.store.renew_lease(replica_id=DEAD, lease_until=lapsed)
    lock_lease = "SELECT replica_id FROM replicas WHERE replica_id = :replica FOR UPDATE"
    async with holding_lock(database_url, lock_lease, replica=DEAD):
        task_id = await orphan(client, lease_s=None)  # DEAD's lapsed lease row is the one held

        async def takeover_waits() -> bool:
            waiting = await context.db.read(
                lambda conn: conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND query LIKE '%FROM replicas%'"
                    )
                ).scalar()
            )
            return bool(waiting)

        await eventually(takeover_waits, timeout_s=5)
        response = await client.post(f"/v1/tasks/{task_id}/cancel")
        assert response.status_code == 202
    finished = await wait_for(client, task_id, timeout_s=3)
    assert finished["status"] == "cancelled"
    assert _finishes(await context.store.task_history(task_id=task_id)) == ["cancelled"]
