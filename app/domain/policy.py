"""An algorithm's policy: the knobs an operator turns, and the pure rules built on them."""

import random
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

RetryCause = Literal["lost", "failed", "timed_out"]
DEFAULT_RETRY_ON: tuple[RetryCause, ...] = ("lost", "failed")
RETRY_JITTER = 0.25
PRIORITY_MIN, PRIORITY_MAX = 0, 9
DEFAULT_RETENTION_S = 7 * 24 * 3600.0

Priority = Annotated[int, Strict(), Field(ge=PRIORITY_MIN, le=PRIORITY_MAX)]
PositiveInt = Annotated[int, Strict(), Field(ge=1)]
PositiveSeconds = Annotated[float, Field(gt=0)]


class PolicyFields(BaseModel):
    """Every field of a policy, each optional: what a file declares or a PATCH changes."""

    model_config = ConfigDict(extra="forbid")

    max_active: PositiveInt | None = None
    max_waiting: PositiveInt | None = None
    timeout_s: PositiveInt | None = None
    max_timeout_s: PositiveInt | None = None
    max_attempts: PositiveInt | None = None
    retry_on: list[RetryCause] | None = None
    retry_base_s: PositiveSeconds | None = None
    retry_max_s: PositiveSeconds | None = None
    poll_interval_s: PositiveSeconds | None = None
    priority: Priority | None = None
    paused: bool | None = None
    paused_until: datetime | None = None
    retention_s: PositiveSeconds | None = None

    def given(self) -> dict[str, Any]:
        """The fields that were set, in JSON form."""
        return self.model_dump(mode="json", exclude_unset=True)


class Policy(BaseModel):
    """The policy in force for one algorithm: defaults, then the file, then the API."""

    model_config = ConfigDict(frozen=True)

    name: str
    max_active: int = 10000
    max_waiting: int = 100000
    timeout_s: int = 3600
    max_timeout_s: int = 86400
    max_attempts: int = 3
    retry_on: tuple[RetryCause, ...] = DEFAULT_RETRY_ON
    retry_base_s: float = 1.0
    retry_max_s: float = 300.0
    poll_interval_s: float = 3.0
    priority: int = 0
    paused: bool = False
    paused_until: datetime | None = None
    retention_s: float = DEFAULT_RETENTION_S  # finished tasks older than this are deleted

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.timeout_s > self.max_timeout_s:
            raise ValueError("timeout_s must not exceed max_timeout_s")
        if self.retry_base_s > self.retry_max_s:
            raise ValueError("retry_base_s must not exceed retry_max_s")
        return self

    def with_fields(self, fields: dict[str, Any]) -> "Policy":
        """This policy with `fields` laid over it (validated as a whole)."""
        return Policy.model_validate({**self.model_dump(), **fields})

    def paused_at(self, now: datetime) -> bool:
        """Paused now: paused, and not past its `paused_until`."""
        return self.paused and (self.paused_until is None or now < self.paused_until)

    def retries(self, cause: RetryCause, attempt: int, max_attempts: int) -> bool:
        """Whether a run that ended in `cause` at `attempt` starts another one."""
        return cause in self.retry_on and attempt < max_attempts

    def backoff_s(self, attempt: int) -> float:
        """The wait before the attempt after `attempt`: doubling from retry_base_s, capped at
        retry_max_s, then +-25 % jitter so that a failure shared by many tasks spreads out."""
        capped_s = min(self.retry_max_s, self.retry_base_s * 2.0 ** max(0, attempt - 1))
        return capped_s * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)
