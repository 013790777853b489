"""The store's batched lookups, against the real database: lookups made together share one
query, and each caller gets its own task (or None)."""

from typing import Any

import anyio
import pytest

from app.core.db import Database
from app.core.migrations import upgrade_to_head
from app.domain.models import StoredTask, TaskStatus, new_task_id, utcnow
from app.store import TaskStore

pytestmark = pytest.mark.anyio


async def test_concurrent_lookups_share_one_read_and_each_gets_its_own_task(
    database_url: str,
) -> None:
    await anyio.to_thread.run_sync(upgrade_to_head, database_url)
    db = Database(database_url)
    reads = 0
    plain_read = db.read

    async def counted_read(work: Any) -> Any:
        nonlocal reads
        reads += 1
        return await plain_read(work)

    db.read = counted_read  # type: ignore[method-assign]
    store = TaskStore(db)
    try:
        known = [
            StoredTask(
                task_id=new_task_id(),
                algorithm="hello",
                status=TaskStatus.PENDING,
                input={"n": n},
                timeout_s=60,
                created_at=utcnow(),
            )
            for n in range(40)
        ]
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
    assert reads <= 3  # 50 lookups; the first leads alone, the rest share a query or two
