"""The database layer as the store relies on it: a transaction PostgreSQL ends to break a
deadlock is run again, so the caller sees its write succeed."""

import threading

import anyio
import pytest
from sqlalchemy import Connection, text

from app.core.db import Database

pytestmark = pytest.mark.anyio


async def test_a_transaction_ended_by_a_deadlock_is_run_again(database_url: str) -> None:
    db = Database(database_url)
    if db.is_sqlite:
        pytest.skip("SQLite runs one writer at a time: its transactions cannot deadlock")
    await db.write(
        lambda conn: conn.execute(
            text(
                "DROP TABLE IF EXISTS deadlock_probe;"
                " CREATE TABLE deadlock_probe (id int PRIMARY KEY, n int NOT NULL);"
                " INSERT INTO deadlock_probe VALUES (1, 0), (2, 0)"
            )
        )
    )
    both_hold_one_row = threading.Barrier(2, timeout=10)
    runs: list[str] = []

    def crosswise(first: int, second: int) -> str:
        def work(conn: Connection) -> str:
            runs.append(f"{first}->{second}")
            conn.execute(text("UPDATE deadlock_probe SET n = n + 1 WHERE id = :id"), {"id": first})
            if len(runs) <= 2:  # only the first two runs meet; a rerun goes straight through
                both_hold_one_row.wait()
            conn.execute(text("UPDATE deadlock_probe SET n = n + 1 WHERE id = :id"), {"id": second})
            return "committed"

        return work

    results: list[str] = []

    async def write(first: int, second: int) -> None:
        results.append(await db.write(crosswise(first, second)))

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(write, 1, 2)
            group.start_soon(write, 2, 1)
        counts = await db.read(
            lambda conn: conn.execute(text("SELECT n FROM deadlock_probe ORDER BY id")).all()
        )
    finally:
        await db.write(lambda conn: conn.execute(text("DROP TABLE IF EXISTS deadlock_probe")))
        await db.dispose()

    assert results == ["committed", "committed"]
    assert len(runs) == 3  # PostgreSQL ended one of the two; it ran once more
    assert [n for (n,) in counts] == [2, 2]  # each write counted exactly once
