"""The built-in algorithm: the C library in clib/ ("sleep 3 s, then output hello world")."""

from collections.abc import Callable
from typing import Any

from app.algorithms.base import (
    AlgorithmError,
    InputRejected,
    JobState,
    JobStatus,
    PollFailed,
    compact_json,
)
from app.native import (
    InvalidHandleError,
    InvalidInputError,
    JobWatcher,
    NativeError,
    NativeLibrary,
    PollError,
)


class HelloAlgorithm:
    """Adapter over the native job library. Its calls return at once (brief mutex holds
    only), so they run on the event loop; through the library's notification fd a job's
    finish wakes its waiter, and its every step reaches its listener (`follow`) or, when
    nobody follows it, wakes its waiter too."""

    name = "hello"

    def __init__(self, lib: NativeLibrary, watcher: JobWatcher) -> None:
        self._lib = lib
        self._watcher = watcher

    def validate(self, payload: dict[str, Any]) -> None:
        try:
            self._lib.validate(compact_json({**payload, "attempt": 1}))  # as submit sends it
        except InvalidInputError as exc:
            raise InputRejected(str(exc)) from exc

    async def submit(self, payload: dict[str, Any], *, task_id: str, attempt: int = 1) -> int:
        # The library reads the attempt number for its fail_attempts switch.
        try:
            return self._lib.submit(compact_json({**payload, "attempt": attempt}))
        except InvalidInputError as exc:
            raise InputRejected(str(exc)) from exc

    async def poll(self, handle: int) -> JobStatus:
        try:
            status = self._lib.poll(handle)
        except PollError as exc:
            raise PollFailed(str(exc)) from exc
        state = status.state
        result = {"output": status.output} if state is JobState.SUCCEEDED else None
        drained = self._watcher.latest(handle) if state.finished else None
        finished_at = drained.finished_at_us / 1e6 if drained and drained.finished_at_us else None
        return JobStatus(
            state=state,
            progress=status.progress,
            result=result,
            error=status.error,
            finished_at=finished_at,
        )

    async def wait(self, handle: int, timeout_s: float) -> None:
        """Returns at the job's finish if it is followed (its steps go to the listener),
        else at its next change (a step done, its finish); or after `timeout_s`."""
        if self._watcher.followed(handle):
            await self._watcher.wait_finished(handle, timeout_s)
        else:
            await self._watcher.wait_changed(handle, timeout_s)

    def follow(self, handle: int, on_progress: Callable[[int], None]) -> None:
        """Hands each step of the job to `on_progress` as the watcher drains it: no poll
        and no wake-up of the waiter per step."""
        self._watcher.follow(handle, on_progress)

    async def cancel(self, handle: int) -> None:
        """Stops the job; a no-op when it is already gone (freed or stale handle)."""
        try:
            self._lib.cancel(handle)
        except InvalidHandleError:
            return
        except NativeError as exc:
            raise AlgorithmError(f"cancel failed: {exc}") from exc

    def release(self, handle: int) -> None:
        self._watcher.forget(handle)
        self._lib.free(handle)
