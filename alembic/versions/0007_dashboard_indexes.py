"""tasks: the dashboard's indexes

The dashboard pages tasks by algorithm (and status) newest first, counts them per
algorithm and status, and charts the last hour's finishes: each of those is an index
range, never a scan of the table, at 100,000 tasks and more.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_tasks_algorithm_created": ["algorithm", "created_at", "task_id"],
    "ix_tasks_algorithm_status_created": ["algorithm", "status", "created_at"],
    "ix_tasks_finished": ["finished_at"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "tasks", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="tasks")
