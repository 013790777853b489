"""Reads of the store for commands that run without a service (blocking, short-lived)."""

from sqlalchemy import select

from app.core.config import Settings
from app.core.db import create_engine
from app.domain.models import TaskStatus
from app.store.tables import tasks


def running_task_ids(settings: Settings) -> list[str]:
    """The tasks the database shows as running, oldest start first."""
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            query = (
                select(tasks.c.task_id)
                .where(tasks.c.status == TaskStatus.RUNNING)
                .order_by(tasks.c.started_at)
            )
            return list(conn.scalars(query))
    finally:
        engine.dispose()
