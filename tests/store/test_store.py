"""The store's batched lookups, against the real database: lookups made together share one
query, and each caller gets its own task (or None)."""

from typing import Any

import anyio
import pytest

from app.core.db import Database
from app.core.migrations import upgrade_to_head
from app.domain.models import StoredTask, TaskStatus, new_task_id, utcnow
from app.domain.policy import Policy
from app.store import TaskStore

HELLO = Policy(name="hello")

pytestmark = pytest.mark.anyio


def _count_calls(db: Database, method: str) -> list[int]:
    """Counts the transactions `db.<method>` runs from now on (in the list's one item)."""
    calls = [0]
    plain = getattr(db, method)

    async def counted(work: Any) -> Any:
        calls[0] += 1
        return await plain(work)

    setattr(db, method, counted)
    return calls


async def test_concurrent_lookups_share_one_read_and_each_gets_its_own_task(
    database_url: str,
) -> None:
    await anyio.to_thread.run_sync(upgrade_to_head, database_url)
    db = Database(database_url)
    reads = _count_calls(db, "read")
    store = TaskStore(db)
    try:
        known = [_pending_task(n) for n in range(40)]
        for task in known:
            await store.insert_task(task=task)
        asked = [task.task_id for task in known] + ["no-such-task"] * 10
        found: dict[int, StoredTask | None] = {}

        async def look_up(index: int) -> None:
            found[index] = await store.get_task(task_id=asked[index])

        async with anyio.create_task_group() as tg:
            for index in range(len(asked)):
                tg.start_soon(look_up, index)
    finally:
        await db.dispose()

    assert [found[i].input if found[i] else None for i in range(len(asked))] == [
        {"n": n} for n in range(40)
    ] + [None] * 10
    assert reads[0] <= 3  # 50 lookups; the first leads alone, the rest share a query or two


async def test_concurrent_cancels_share_transactions_and_each_gets_its_answer(
    database_url: str,
) -> None:
    await anyio.to_thread.run_sync(upgrade_to_head, database_url)
    db = Database(database_url)
    store = TaskStore(db)
    try:
        pending = [_pending_task(n) for n in range(30)]
        for task in pending:
            await store.insert_task(task=task)
        await store.ensure_policies(names=["hello"])
        claim = await store.claim(owner="replica-a", base={"hello": HELLO}, slots=1)
        assert [task.task_id for task in claim.started] == [pending[0].task_id]
        writes = _count_calls(db, "write")
        # The running one, every pending one (the last twice) and an unknown id.
        asked = [task.task_id for task in pending] + [pending[-1].task_id, "no-such-task"]
        answers: dict[int, Any] = {}

        async def cancel(index: int) -> None:
            answers[index] = await store.cancel(task_id=asked[index], replica="replica-b")

        async with anyio.create_task_group() as tg:
            for index in range(len(asked)):
                tg.start_soon(cancel, index)
        history = await store.task_history(task_id=pending[1].task_id)
        running = await store.get_task(task_id=pending[0].task_id)
    finally:
        await db.dispose()

    assert writes[0] <= 3  # 32 cancels; the first leads alone, the rest share one or two
    first = answers[0]
    assert (first.before, first.task.status, first.task.cancel_requested) == (
        TaskStatus.RUNNING,
        TaskStatus.RUNNING,
        True,
    )
    assert running is not None
    assert running.cancel_requested
    for index in range(1, 30):
        assert (answers[index].before, answers[index].task.status) == (
            TaskStatus.PENDING,
            TaskStatus.CANCELLED,
        )
    # Asked twice: cancelled once; the second ask finds it finished.
    assert answers[30].before is TaskStatus.CANCELLED
    assert answers[31] is None
    assert [(e.from_status, e.to_status, e.replica) for e in history][-1] == (
        "pending",
        "cancelled",
        "replica-b",
    )


def _pending_task(n: int) -> StoredTask:
    return StoredTask(
        task_id=new_task_id(),
        algorithm="hello",
        status=TaskStatus.PENDING,
        input={"n": n},
        timeout_s=60,
        created_at=utcnow(),
    )
