"""The Alembic migrations: they build exactly the schema the models describe, and the
replica-lease migration (0003) keeps every unfinished task held by its owner."""

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

from app.core.db import driver_url
from app.core.migrations import (
    alembic_config,
    database_revisions,
    head_revisions,
    upgrade_to_head,
)
from app.domain.models import utcnow


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    admin_url = os.environ.get("TASKBEAT_TEST_DATABASE_URL")
    if not admin_url:
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    import pgadmin

    with pgadmin.fresh_database(admin_url, "taskbeat_migrations") as url:
        yield url


def test_the_migrations_build_the_schema_the_models_describe(empty_database_url: str) -> None:
    upgrade_to_head(empty_database_url)
    engine = create_engine(driver_url(empty_database_url))
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_the_lease_migration_keeps_unfinished_tasks_held(empty_database_url: str) -> None:
    config = alembic_config(empty_database_url)
    command.upgrade(config, "0002")
    lease = (utcnow() + timedelta(seconds=30)).replace(microsecond=0)
    engine = create_engine(driver_url(empty_database_url))
    insert = text(
        "INSERT INTO tasks (task_id, algorithm, status, progress, attempt, poll_failures,"
        " timeout_s, created_at, owner, lease_expires_at, cancel_requested)"
        " VALUES (:id, 'hello', :status, 0, 1, 0, 60, :now, :owner, :lease, false)"
    )
    naive = empty_database_url.startswith("sqlite")  # SQLite keeps UTC without a zone
    stored_lease = lease.replace(tzinfo=None) if naive else lease
    try:
        with engine.begin() as conn:
            for task_id, status, owner in [
                ("t-running", "running", "replica-a"),
                ("t-pending", "pending", "replica-a"),
                ("t-done", "succeeded", "replica-b"),
            ]:
                conn.execute(
                    insert,
                    {
                        "id": task_id,
                        "status": status,
                        "now": stored_lease,
                        "owner": owner,
                        "lease": stored_lease,
                    },
                )
        command.upgrade(config, "0003")
        with engine.connect() as conn:
            leases = conn.execute(text("SELECT replica_id, lease_expires_at FROM replicas")).all()
            owners = conn.execute(text("SELECT task_id, owner FROM tasks ORDER BY task_id")).all()
        assert [(replica, str(at)[:19]) for replica, at in leases] == [
            ("replica-a", str(stored_lease)[:19])
        ]
        assert owners == [
            ("t-done", "replica-b"),
            ("t-pending", "replica-a"),
            ("t-running", "replica-a"),
        ]

        command.downgrade(config, "0002")
        with engine.connect() as conn:
            restored = conn.execute(
                text("SELECT task_id, lease_expires_at FROM tasks ORDER BY task_id")
            ).all()
        assert [(task_id, at is not None) for task_id, at in restored] == [
            ("t-done", False),
            ("t-pending", True),
            ("t-running", True),
        ]
    finally:
        engine.dispose()


def test_the_policy_migration_queues_waiting_tasks_and_goes_down_again(
    empty_database_url: str,
) -> None:
    config = alembic_config(empty_database_url)
    command.upgrade(config, "0003")
    engine = create_engine(driver_url(empty_database_url))
    insert = text(
        "INSERT INTO tasks (task_id, algorithm, status, progress, attempt, poll_failures,"
        " timeout_s, created_at, owner, cancel_requested)"
        " VALUES (:id, 'hello', :status, 0, :attempt, 0, 60, :now, 'replica-a', false)"
    )
    now = utcnow().replace(tzinfo=None) if empty_database_url.startswith("sqlite") else utcnow()
    try:
        with engine.begin() as conn:
            conn.execute(insert, {"id": "t-pending", "status": "pending", "attempt": 0, "now": now})
            conn.execute(insert, {"id": "t-running", "status": "running", "attempt": 1, "now": now})
        command.upgrade(config, "head")
        query = text("SELECT task_id, owner, max_attempts, priority FROM tasks ORDER BY task_id")
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        # the waiting task joins the one queue; the running one stays held, with its retries
        assert [tuple(row) for row in rows] == [
            ("t-pending", None, 3, 0),
            ("t-running", "replica-a", 3, 0),
        ]
        command.downgrade(config, "0003")
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            columns = {column["name"] for column in inspect(conn).get_columns("tasks")}
        assert not {"algorithm_policies", "task_attempts"} & tables
        assert not {"priority", "max_attempts", "next_attempt_at"} & columns
        command.upgrade(config, "head")
    finally:
        engine.dispose()


def test_the_head_read_from_the_scripts_is_alembics(empty_database_url: str) -> None:
    scripts = ScriptDirectory.from_config(alembic_config(empty_database_url))
    assert head_revisions() == set(scripts.get_heads())


def test_a_start_at_the_head_does_not_load_alembic(empty_database_url: str) -> None:
    assert database_revisions(empty_database_url) == set()
    upgrade_to_head(empty_database_url)
    assert database_revisions(empty_database_url) == head_revisions()
    check = (
        "import sys; from app.core.migrations import upgrade_to_head; "
        f"upgrade_to_head({empty_database_url!r}); print('alembic' in sys.modules)"
    )
    again = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True
    )
    assert again.stdout.strip() == "False", again.stderr
    # One revision behind: Alembic is loaded and brings it to the head again.
    command.downgrade(alembic_config(empty_database_url), "-1")
    assert database_revisions(empty_database_url) != head_revisions()
    behind = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True
    )
    assert behind.stdout.strip() == "True", behind.stderr
    assert database_revisions(empty_database_url) == head_revisions()
