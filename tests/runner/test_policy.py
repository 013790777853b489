"""The pure rules of a run: the backoff between failed polls, and how a finished job maps
to the task's outcome."""

import pytest

from app.algorithms.base import JobState, JobStatus
from app.domain.models import TaskStatus
from app.domain.outcome import Outcome
from app.runner.policy import outcome_of, retry_delay_s


def test_the_retry_delay_doubles_from_a_tenth_of_a_second() -> None:
    delays = [retry_delay_s(failures, poll_interval_s=60.0) for failures in range(1, 7)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2])


def test_the_retry_delay_never_exceeds_the_poll_interval() -> None:
    assert retry_delay_s(5, poll_interval_s=1.0) == 1.0  # 1.6 s of backoff, capped
    assert retry_delay_s(1, poll_interval_s=0.05) == 0.05  # even the first retry
    assert retry_delay_s(0, poll_interval_s=60.0) == pytest.approx(0.1)


def test_the_retry_delay_stays_capped_however_many_polls_failed() -> None:
    assert retry_delay_s(2000, poll_interval_s=3.0) == 3.0


def test_a_succeeded_job_ends_the_task_at_full_progress_with_its_result() -> None:
    status = JobStatus(JobState.SUCCEEDED, progress=80, result={"greeting": "hello"})
    assert outcome_of(status, poll_failures=2) == Outcome(
        TaskStatus.SUCCEEDED, 100, {"greeting": "hello"}, None, 2
    )


def test_a_cancelled_job_keeps_its_progress_and_says_cancelled() -> None:
    status = JobStatus(JobState.CANCELLED, progress=40, result="partial")
    assert outcome_of(status, poll_failures=0) == Outcome(
        TaskStatus.CANCELLED, 40, None, "cancelled", 0
    )


def test_a_failed_job_keeps_its_error_and_drops_any_result() -> None:
    status = JobStatus(JobState.FAILED, progress=30, result="partial", error="out of memory")
    assert outcome_of(status, poll_failures=1) == Outcome(
        TaskStatus.FAILED, 30, None, "out of memory", 1
    )


@pytest.mark.parametrize("error", [None, ""])
def test_a_failure_without_a_message_still_tells_the_user_something(error: str | None) -> None:
    outcome = outcome_of(JobStatus(JobState.FAILED, progress=0, error=error), poll_failures=0)
    assert outcome.status is TaskStatus.FAILED
    assert outcome.error == "the algorithm reported a failure without a message"
