"""Pure rules of a run: how long to wait before retrying a failed poll, how a job maps to a task."""

from app.algorithms.base import JobState, JobStatus
from app.domain.models import TaskStatus
from app.domain.outcome import Outcome

FIRST_RETRY_DELAY_S = 0.1


def retry_delay_s(consecutive_failures: int, poll_interval_s: float) -> float:
    """Exponential backoff from 0.1 s, never longer than the poll interval."""
    # 2 ** 60 passes any interval; a larger power would overflow a float past 1024 failures.
    doublings = min(max(0, consecutive_failures - 1), 60)
    return min(poll_interval_s, FIRST_RETRY_DELAY_S * 2.0**doublings)


def outcome_of(status: JobStatus, *, poll_failures: int) -> Outcome:
    """The task outcome of a finished job."""
    if status.state is JobState.SUCCEEDED:
        return Outcome(TaskStatus.SUCCEEDED, 100, status.result, None, poll_failures)
    if status.state is JobState.CANCELLED:
        return Outcome(TaskStatus.CANCELLED, status.progress, None, "cancelled", poll_failures)
    error = status.error or "the algorithm reported a failure without a message"
    return Outcome(TaskStatus.FAILED, status.progress, None, error, poll_failures)
