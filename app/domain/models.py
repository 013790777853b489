"""The task's statuses and the Task model ladder: TaskCreate -> Task (table) -> TaskPublic."""

import enum
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Strict, field_validator, model_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, DateTime, Index, String, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlmodel import Column, Field, SQLModel


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED: frozenset[TaskStatus] = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.TIMED_OUT}
)
UNFINISHED: frozenset[TaskStatus] = frozenset(set(TaskStatus) - FINISHED)
# The finished statuses a re-run may start again from (a success is never re-run).
RERUNNABLE: frozenset[TaskStatus] = FINISHED - {TaskStatus.SUCCEEDED}


# The furthest a task's start may be put off (run_at, delay_s): a year and a day.
MAX_DELAY_S = 366 * 24 * 3600


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_task_id() -> str:
    return str(uuid.uuid4())


def is_task_id(text: str) -> bool:
    """True for a task id in the form this service gives out (a lowercase canonical UUID)."""
    try:
        return len(text) == 36 and str(uuid.UUID(text)) == text
    except ValueError:
        return False


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONValue = JSON().with_variant(JSONB(), "postgresql")


def _time_column(*, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


class TaskCreate(SQLModel):
    """What a client sends to create a task."""

    algorithm: str = Field(min_length=1, max_length=64)
    input: dict[str, Any] = Field(default_factory=dict)
    # strict: "5" or 5.5 is a client's mistake, not a timeout
    timeout_s: Annotated[int, Strict()] | None = Field(default=None, ge=1)
    priority: Annotated[int, Strict()] | None = Field(default=None, ge=0, le=9)
    # A delayed start: at `run_at` (with its UTC offset), or `delay_s` seconds from now.
    run_at: AwareDatetime | None = None
    delay_s: Annotated[float, Strict()] | None = Field(default=None, gt=0, le=MAX_DELAY_S)

    @field_validator("algorithm")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("run_at", mode="before")
    @classmethod
    def _iso_text(cls, value: Any) -> Any:
        # a number is no ISO-8601 time (pydantic reports a ValueError)
        if value is not None and not isinstance(value, str):
            raise ValueError("run_at must be an ISO-8601 date and time with a UTC offset")
        return value

    @model_validator(mode="after")
    def _one_start_time(self) -> Self:
        if self.run_at is not None and self.delay_s is not None:
            raise ValueError("give run_at or delay_s, not both")
        if self.run_at is not None and self.run_at - utcnow() > timedelta(seconds=MAX_DELAY_S):
            raise ValueError(f"run_at must be at most {MAX_DELAY_S // 86400} days from now")
        return self

    def start_at(self, now: datetime) -> datetime | None:
        """When the task may start, in UTC (a run_at already past is now); None: not asked."""
        if self.delay_s is not None:
            return now + timedelta(seconds=self.delay_s)
        if self.run_at is not None:
            return max(self.run_at, now).astimezone(UTC)
        return None


class TaskBase(SQLModel):
    """Every stored field of a task: the columns of the tasks table."""

    task_id: str = Field(primary_key=True, max_length=36)
    algorithm: str = Field(max_length=64, index=True)
    status: TaskStatus = Field(sa_column=Column(String(16), nullable=False))
    progress: int = 0
    input: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONValue))
    result: Any = Field(default=None, sa_column=Column(JSONValue, nullable=True))
    error: str | None = None
    attempt: int = 0
    max_attempts: int = 1
    priority: int = 0
    poll_failures: int = 0
    timeout_s: int
    # When the task was asked to start (a delayed start; None: at once). It stays as asked.
    run_at: datetime | None = _time_column()
    # When the next attempt becomes due: its run_at before the first one, a retry's backoff
    # end after a failed one (None: due at once). The queue's one "not before" column.
    next_attempt_at: datetime | None = _time_column()
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    started_at: datetime | None = _time_column()
    finished_at: datetime | None = _time_column()
    # The replica that runs (or queued) the task; it holds the task while its lease lasts.
    owner: str | None = Field(default=None, max_length=64)
    cancel_requested: bool = False
    # The API key that created the task (None with auth off): a client key sees only its own.
    api_key_id: str | None = Field(default=None, max_length=32)
    # The API key that asked the cancel, for the transition log.
    cancel_key_id: str | None = Field(default=None, max_length=32)
    # The schedule that fired it, and the tick it fired for: one task per (schedule, tick).
    schedule: str | None = Field(default=None, max_length=64)
    scheduled_for: datetime | None = _time_column()


class Task(TaskBase, table=True):
    """The tasks table: the single source of truth. It defines the schema; rows are written
    and read as StoredTask."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_created", "created_at", "task_id"),
        Index("ix_tasks_status_created", "status", "created_at"),
        Index("ix_tasks_owner_status", "owner", "status"),
        Index("ix_tasks_api_key_created", "api_key_id", "created_at", "task_id"),
        Index("ix_tasks_api_key_status", "api_key_id", "status"),
        # the dashboard: pages by algorithm (and status), counts, and the last hour's finishes
        Index("ix_tasks_algorithm_created", "algorithm", "created_at", "task_id"),
        Index("ix_tasks_algorithm_status_created", "algorithm", "status", "created_at"),
        Index("ix_tasks_finished", "finished_at"),
        # The queue: a claim reads one algorithm's waiting tasks, highest priority first.
        Index("ix_tasks_queue", "algorithm", "status", "priority", "created_at"),
        # The next due time of the waiting tasks (delayed starts, retries): a range, no scan.
        Index("ix_tasks_due", "status", "next_attempt_at"),
        # Exactly one task per schedule tick over every replica: a second firing is a no-op.
        Index("ux_tasks_schedule_tick", "schedule", "scheduled_for", unique=True),
        Index("ix_tasks_schedule_created", "schedule", "created_at", "task_id"),
    )


class StoredTask(TaskBase):
    """A task row as plain data, validated: what the store writes and reads back. (An
    instance of the table model carries ORM state: ~35 µs to build, against ~5 here.)"""


class Replica(SQLModel, table=True):
    """A replica's lease on all the tasks it owns: each heartbeat renews this one row, and
    once it lapses the sweeper moves the replica's unfinished tasks on."""

    __tablename__ = "replicas"

    replica_id: str = Field(primary_key=True, max_length=64)
    lease_expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class TaskEvent(SQLModel, table=True):
    """One status change of a task: the audit trail that shows each task finished once."""

    __tablename__ = "task_events"

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(max_length=36, index=True)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    replica: str | None = Field(default=None, max_length=64)
    attempt: int = 0
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # The API key that caused the change (a create, a cancel), never its secret.
    api_key_id: str | None = Field(default=None, max_length=32)


class AlgorithmPolicy(SQLModel, table=True):
    """The policy fields of one algorithm changed through the API (JSON, sparse: a field not
    here comes from configuration). Claims lock this row, so the limit holds cluster-wide."""

    __tablename__ = "algorithm_policies"

    name: str = Field(primary_key=True, max_length=64)
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONValue))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class TaskAttempt(SQLModel, table=True):
    """One run of a task: how it ended, where, and when."""

    __tablename__ = "task_attempts"

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(max_length=36, index=True)
    attempt: int
    status: str = Field(max_length=16)  # a finished status, or "lost" (its replica died)
    error: str | None = None
    replica: str | None = Field(default=None, max_length=64)
    started_at: datetime | None = _time_column()
    finished_at: datetime | None = _time_column()


class IdempotencyKey(SQLModel, table=True):
    """An Idempotency-Key of a create, per API key (`scope`, "" with auth off): the primary
    key makes a second create with it, on any replica, find the first one's task."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        Index("ix_idempotency_keys_expires", "expires_at"),
        # a deleted task frees its keys (retention, DELETE /v1/tasks/{id})
        Index("ix_idempotency_keys_task", "task_id"),
    )

    scope: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=255)
    body_hash: str = Field(max_length=64)  # sha256 of the create's canonical body
    task_id: str = Field(max_length=36)
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class AttemptPublic(SQLModel):
    attempt: int
    status: str
    error: str | None
    replica: str | None
    started_at: datetime | None
    finished_at: datetime | None


class TaskPublic(SQLModel):
    """A task as clients see it."""

    task_id: str
    algorithm: str
    status: TaskStatus
    progress: int
    input: dict[str, Any]
    result: Any
    error: str | None
    attempt: int
    max_attempts: int
    priority: int
    poll_failures: int
    timeout_s: int
    run_at: datetime | None = None
    next_attempt_at: datetime | None
    schedule: str | None = None
    scheduled_for: datetime | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None = None
    paused: bool = False  # pending because its algorithm is paused


class TaskPage(SQLModel):
    items: list[TaskPublic]
    next_cursor: str | None


class BulkFilter(BaseModel):
    """Which tasks a bulk action takes (every field optional; all given must match)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field must not widen the action

    # printable text only (PostgreSQL cannot compare a NUL)
    algorithm: str | None = PydanticField(
        default=None, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    status: TaskStatus | None = None
    created_before: datetime | None = None
    schedule: str | None = PydanticField(
        default=None, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$"
    )

    @field_validator("created_before")
    @classmethod
    def _as_utc(cls, value: datetime | None) -> datetime | None:
        """In UTC (a time without a zone is taken as UTC)."""
        if value is None:
            return None
        try:
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        except OverflowError:
            raise ValueError("out of range once in UTC") from None


class BulkAnswer(BaseModel):
    matched: int  # tasks the filter found that the action applies to
    changed: int  # of those, the ones this call changed
