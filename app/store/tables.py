"""The tables the store writes, and how a row becomes a domain value."""

from sqlalchemy.engine import RowMapping

from app.domain.models import (
    UNFINISHED,
    AlgorithmPolicy,
    IdempotencyKey,
    Replica,
    StoredTask,
    Task,
    TaskAttempt,
    TaskEvent,
)
from app.domain.schedule import ScheduleRow

tasks = Task.__table__  # type: ignore[attr-defined]
task_events = TaskEvent.__table__  # type: ignore[attr-defined]
replicas = Replica.__table__  # type: ignore[attr-defined]
policies = AlgorithmPolicy.__table__  # type: ignore[attr-defined]
attempts = TaskAttempt.__table__  # type: ignore[attr-defined]
idempotency_keys = IdempotencyKey.__table__  # type: ignore[attr-defined]
schedules = ScheduleRow.__table__  # type: ignore[attr-defined]
UNFINISHED_VALUES = [status.value for status in UNFINISHED]


def task_from_row(row: RowMapping) -> StoredTask:
    return StoredTask.model_validate(dict(row))
