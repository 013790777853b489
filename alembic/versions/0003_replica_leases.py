"""replicas: one lease row per replica instead of a lease in every task row

Renewing a replica's hold on its tasks was an UPDATE of all of its task rows every
heartbeat (10,000 rows every 2 s at 10,000 tasks in flight), which also deadlocked with
batched writes of the same rows. Now each heartbeat renews one row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("replica_id", sa.String(length=64), primary_key=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    # The owners of unfinished tasks keep the longest lease they held (no owner or no lease:
    # lapsed, as before), so no task in flight across the upgrade is lost or stolen.
    op.execute(
        "INSERT INTO replicas (replica_id, lease_expires_at)"
        " SELECT owner, MAX(lease_expires_at) FROM tasks"
        " WHERE owner IS NOT NULL AND lease_expires_at IS NOT NULL"
        " AND status IN ('pending', 'running') GROUP BY owner"
    )
    op.drop_index("ix_tasks_lease", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("lease_expires_at")


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE tasks SET lease_expires_at = (SELECT lease_expires_at FROM replicas"
        " WHERE replicas.replica_id = tasks.owner)"
    )
    op.create_index("ix_tasks_lease", "tasks", ["status", "lease_expires_at"])
    op.drop_table("replicas")
