"""How a run ended: the value the runner, the callbacks and the store pass around."""

from dataclasses import dataclass
from typing import Any

from app.domain.models import TaskStatus


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended."""

    status: TaskStatus
    progress: int
    result: Any = None
    error: str | None = None
    poll_failures: int = 0
    retryable: bool = True  # False for an input refusal: another attempt would fail alike
    job_finished_at: float | None = None  # unix seconds the job ended, as its algorithm said
