"""idempotency keys of creates

An Idempotency-Key of POST /v1/tasks is a row here, per API key (scope), inserted in the
transaction that inserts its task: the primary key makes a second create with the same key,
on any replica, find the first one's task instead of making another.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=32), primary_key=True),
        sa.Column("key", sa.String(length=255), primary_key=True),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_idempotency_keys_expires", "idempotency_keys", ["expires_at"])
    op.create_index("ix_idempotency_keys_task", "idempotency_keys", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_task", table_name="idempotency_keys")
    op.drop_index("ix_idempotency_keys_expires", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
