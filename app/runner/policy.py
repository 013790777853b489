"""Pure rules of a run: how long to wait before retrying a failed poll, how a job maps to a
task, and whether an ending starts another attempt."""

from datetime import datetime, timedelta
from typing import Protocol

from app.algorithms.base import JobState, JobStatus
from app.domain.models import TaskStatus, utcnow
from app.domain.outcome import Outcome
from app.domain.policy import Policy, RetryCause

RETRY_CAUSES: dict[TaskStatus, RetryCause] = {
    TaskStatus.FAILED: "failed",
    TaskStatus.TIMED_OUT: "timed_out",
}

FIRST_RETRY_DELAY_S = 0.1


def retry_delay_s(consecutive_failures: int, poll_interval_s: float) -> float:
    """Exponential backoff from 0.1 s, never longer than the poll interval."""
    # 2 ** 60 passes any interval; a larger power would overflow a float past 1024 failures.
    doublings = min(max(0, consecutive_failures - 1), 60)
    return min(poll_interval_s, FIRST_RETRY_DELAY_S * 2.0**doublings)


def outcome_of(status: JobStatus, *, poll_failures: int) -> Outcome:
    """The task outcome of a finished job."""
    if status.state is JobState.SUCCEEDED:
        task_status, progress, error = TaskStatus.SUCCEEDED, 100, None
    elif status.state is JobState.CANCELLED:
        task_status, progress, error = TaskStatus.CANCELLED, status.progress, "cancelled"
    else:
        task_status, progress = TaskStatus.FAILED, status.progress
        error = status.error or "the algorithm reported a failure without a message"
    result = status.result if task_status is TaskStatus.SUCCEEDED else None
    return Outcome(
        task_status, progress, result, error, poll_failures, job_finished_at=status.finished_at
    )


class Attempt(Protocol):
    attempt: int
    max_attempts: int


def next_attempt_at(policy: Policy, outcome: Outcome, run: Attempt) -> datetime | None:
    """When the next attempt is due if this ending of the run starts one (None: the task
    ends here). Cancels and input refusals never start one."""
    cause = RETRY_CAUSES.get(outcome.status)
    if cause is None or not outcome.retryable:
        return None
    if not policy.retries(cause, run.attempt, run.max_attempts):
        return None
    return utcnow() + timedelta(seconds=policy.backoff_s(run.attempt))
