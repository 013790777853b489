"""tasks: delayed starts (run_at), and the index of the next due time

A delayed task waits in the queue like a retry waiting for its backoff: its
next_attempt_at is its run_at, so the claim's "due" condition is unchanged. run_at keeps
the start as asked, for clients. ix_tasks_due answers "when is the next waiting task
due" (each replica asks every few seconds) as an index range, not a scan.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("run_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_tasks_due", "tasks", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_due", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("run_at")
