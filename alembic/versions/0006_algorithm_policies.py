"""algorithm policies, task attempts, and the queue columns of tasks

A waiting task is no longer tied to the replica that received it: the database is the
one queue (pending, no owner), ordered by priority then age, due once its retry's backoff
ended. Each algorithm's policy changes made through the API live in algorithm_policies;
every run of a task is a row of task_attempts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_VALUE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(
            sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="1")
        )
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("tasks") as batch:
        batch.alter_column("max_attempts", server_default=None)
        batch.alter_column("priority", server_default=None)
    # Waiting tasks join the one queue; the max_attempts of tasks in flight stays 3, the
    # old fixed default, so none of them loses a retry it had.
    op.execute("UPDATE tasks SET max_attempts = 3 WHERE status IN ('pending', 'running')")
    op.execute("UPDATE tasks SET owner = NULL WHERE status = 'pending'")
    op.create_index(
        "ix_tasks_queue", "tasks", ["algorithm", "status", "priority", "created_at"]
    )
    op.create_table(
        "algorithm_policies",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("fields", JSON_VALUE, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "task_attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("replica", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_task_attempts_task_id", "task_attempts", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_task_attempts_task_id", table_name="task_attempts")
    op.drop_table("task_attempts")
    op.drop_table("algorithm_policies")
    op.drop_index("ix_tasks_queue", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("next_attempt_at")
        batch.drop_column("priority")
        batch.drop_column("max_attempts")
