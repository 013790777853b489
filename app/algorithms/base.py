"""What the runner needs from an algorithm, whatever runs it (the C library, a remote engine)."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

# The job states every adapter reports: the C library's, re-exported for the adapters.
from app.native import JobState as JobState


@dataclass(frozen=True, slots=True)
class JobStatus:
    state: JobState
    progress: int
    result: Any = None
    error: str | None = None
    finished_at: float | None = None  # unix seconds of a finished job's end, if it says


class AlgorithmError(Exception):
    """Base of what an algorithm raises."""


class InputRejected(AlgorithmError):
    """The algorithm refuses this input; the message says why."""


class PollFailed(AlgorithmError):
    """One poll failed; the runner retries it."""


class Algorithm(Protocol):
    """An algorithm's jobs: submit, poll, wait, cancel, release. Never blocks the loop."""

    name: str

    def validate(self, payload: dict[str, Any]) -> None:
        """Raises InputRejected when `payload` would be refused by submit."""

    async def submit(self, payload: dict[str, Any], *, task_id: str, attempt: int = 1) -> Any:
        """Starts a job for the task's `attempt` (1 for its first run) and returns its
        handle at once."""

    async def poll(self, handle: Any) -> JobStatus:
        """The job's state now; raises PollFailed when the poll itself failed."""

    async def wait(self, handle: Any, timeout_s: float) -> None:
        """Returns when the job may have moved or finished, or after `timeout_s`."""

    async def cancel(self, handle: Any) -> None:
        """Asks the job to stop; it then reports CANCELLED."""

    def release(self, handle: Any) -> None:
        """Frees what the handle holds; the handle is dead afterwards."""


@runtime_checkable
class AcceptsCallbacks(Protocol):
    """An algorithm whose engine also reports by callback (POST /v1/tasks/{id}/callback)."""

    def deliver(self, handle: Any, status: JobStatus) -> None:
        """Hands a reported status to the job's handle and wakes its waiter."""


@runtime_checkable
class StreamsProgress(Protocol):
    """An algorithm that hands each progress move of a job to a listener as it happens."""

    def follow(self, handle: Any, on_progress: Callable[[int], None]) -> None:
        """From now until release, calls `on_progress(progress)` on the event loop at each
        move of the job; `wait` then returns at the finish (or the timeout) only."""


def compact_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
