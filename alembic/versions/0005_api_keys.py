"""api_keys, and the key that created (or cancelled) each task and caused each transition

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(length=32), primary_key=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rate_per_s", sa.Integer(), nullable=True),
        sa.Column("max_unfinished", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
    )
    op.create_index("ix_api_keys_secret_sha256", "api_keys", ["secret_sha256"], unique=True)
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("api_key_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("cancel_key_id", sa.String(length=32), nullable=True))
    op.create_index("ix_tasks_api_key_created", "tasks", ["api_key_id", "created_at", "task_id"])
    op.create_index("ix_tasks_api_key_status", "tasks", ["api_key_id", "status"])
    with op.batch_alter_table("task_events") as batch:
        batch.add_column(sa.Column("api_key_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_events") as batch:
        batch.drop_column("api_key_id")
    op.drop_index("ix_tasks_api_key_status", table_name="tasks")
    op.drop_index("ix_tasks_api_key_created", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("cancel_key_id")
        batch.drop_column("api_key_id")
    op.drop_table("api_keys")
