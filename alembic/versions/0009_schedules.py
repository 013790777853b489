"""schedules, and the tasks a schedule fires

A schedule fires one task per tick over every replica without a leader: each replica
may try a tick, and the unique index on tasks (schedule, scheduled_for) makes every try
after the first a no-op (INSERT ... ON CONFLICT DO NOTHING).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_VALUE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("algorithm", sa.String(length=64), nullable=False),
        sa.Column("input", JSON_VALUE, nullable=True),
        sa.Column("cron", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("overlap", sa.String(length=8), nullable=False),
        sa.Column("catchup_s", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("declared", JSON_VALUE, nullable=True),
        sa.Column("since_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_tick_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("schedule", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ux_tasks_schedule_tick", "tasks", ["schedule", "scheduled_for"], unique=True
    )
    op.create_index("ix_tasks_schedule_created", "tasks", ["schedule", "created_at", "task_id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_schedule_created", table_name="tasks")
    op.drop_index("ux_tasks_schedule_tick", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("scheduled_for")
        batch.drop_column("schedule")
    op.drop_table("schedules")
