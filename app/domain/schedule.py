"""A schedule: an algorithm, an input and a cadence; the fields a client sends and sees,
and the table that keeps them."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator
from sqlmodel import Column, SQLModel
from sqlmodel import Field as ColumnField

from app.domain.cadence import Cadence
from app.domain.models import JSONValue, UTCDateTime
from app.domain.policy import Priority

Overlap = Literal["skip", "allow"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_CATCHUP_S = 366 * 24 * 3600
RECENT_TASKS = 10  # the tasks a schedule's page lists


class ScheduleChange(BaseModel):
    """Any subset of a schedule's fields: what a PATCH sends (the name stays)."""

    model_config = ConfigDict(extra="forbid")

    algorithm: str | None = Field(default=None, min_length=1, max_length=64)
    input: dict[str, Any] | None = None
    cron: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    overlap: Overlap | None = None
    catchup_s: Annotated[int, Strict(), Field(ge=0, le=MAX_CATCHUP_S)] | None = None
    paused: Annotated[bool, Strict()] | None = None
    priority: Priority | None = None


class ScheduleFields(BaseModel):
    """A whole schedule but its name: what a file declares, validated as a whole."""

    model_config = ConfigDict(extra="forbid")

    algorithm: str = Field(min_length=1, max_length=64)
    input: dict[str, Any] = Field(default_factory=dict)
    cron: str = Field(min_length=1, max_length=200, description="cron, @every 30s, @hourly")
    timezone: str = Field(default="UTC", min_length=1, max_length=64, description="IANA name")
    overlap: Overlap = "skip"
    catchup_s: Annotated[int, Strict(), Field(ge=0, le=MAX_CATCHUP_S)] = 0
    paused: Annotated[bool, Strict()] = False
    priority: Priority | None = Field(default=None, description="null: the algorithm's")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        Cadence("@every 1s", value)  # CadenceError is a ValueError: pydantic names the field
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        Cadence(value.strip())
        return value.strip()

    @property
    def cadence(self) -> Cadence:
        return Cadence(self.cron, self.timezone)


class ScheduleCreate(ScheduleFields):
    """What a client sends to create a schedule."""

    name: str = Field(pattern=NAME_PATTERN, description="letters, digits, . _ -; 64 at most")


class ScheduleRow(SQLModel, table=True):
    """A schedule. `since_at`: ticks up to then are never fired (its creation, a change of
    its cadence, a resume); `last_tick_at`: the latest tick any replica dealt with."""

    __tablename__ = "schedules"

    name: str = ColumnField(primary_key=True, max_length=64)
    algorithm: str = ColumnField(max_length=64)
    input: dict[str, Any] = ColumnField(default_factory=dict, sa_column=Column(JSONValue))
    cron: str = ColumnField(max_length=200)
    timezone: str = ColumnField(max_length=64)
    overlap: str = ColumnField(max_length=8)
    catchup_s: int = 0
    paused: bool = False
    priority: int | None = None
    # The fields the configuration file declared when it was last applied (None: made
    # through the API); a file that declares other fields lays them over the row.
    declared: dict[str, Any] | None = ColumnField(
        default=None, sa_column=Column(JSONValue, nullable=True)
    )
    since_at: datetime = ColumnField(sa_column=Column(UTCDateTime(), nullable=False))
    last_tick_at: datetime | None = ColumnField(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    created_at: datetime = ColumnField(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = ColumnField(sa_column=Column(UTCDateTime(), nullable=False))


class ScheduleShown(BaseModel):
    """The fields of a schedule that clients see and the store keeps alike."""

    name: str
    algorithm: str
    input: dict[str, Any]
    cron: str
    timezone: str
    overlap: Overlap
    catchup_s: int
    paused: bool
    priority: int | None
    last_tick_at: datetime | None = Field(description="the latest tick fired or skipped")
    created_at: datetime
    updated_at: datetime


class StoredSchedule(ScheduleShown):
    """A schedule row as plain data."""

    declared: dict[str, Any] | None = None
    since_at: datetime

    @property
    def cadence(self) -> Cadence:
        return Cadence(self.cron, self.timezone)

    def fields(self) -> dict[str, Any]:
        """The schedule's own fields, as a client sends them (without the name)."""
        return self.model_dump(mode="json", include=set(ScheduleFields.model_fields))


class ScheduledTask(BaseModel):
    """A task a schedule created, as its schedule's page lists it."""

    task_id: str
    status: str
    scheduled_for: datetime
    created_at: datetime
    finished_at: datetime | None


class SchedulePublic(ScheduleShown):
    """A schedule as clients see it."""

    next_fire_at: datetime | None = Field(description="null while paused")
    recent_tasks: list[ScheduledTask] | None = Field(
        default=None, description=f"its last {RECENT_TASKS} tasks, newest first (on GET by name)"
    )
