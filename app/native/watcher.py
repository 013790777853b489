"""Wakes coroutines when their native job changes (from the library's notify fd: a step
done, a start, a finish) or when their wait runs out, with one timer for all waits."""

import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import anyio
import anyio.abc

from app.native._lib import JobChange, NativeLibrary

# The reader wakes for deadlines on this grid: the waits that end within one tick end
# together. Thousands of runs waiting for their next poll end thousands of waits a second,
# and a timer per deadline kept the loop busy re-arming (the loop's timers fire by the
# millisecond, a cancel scope that wakes early re-arms itself until its deadline).
TICK_S = 0.01


def tick_after(deadline: float) -> float:
    """The first tick of the grid at or after `deadline`."""
    return math.ceil(deadline / TICK_S) * TICK_S


@dataclass(eq=False, slots=True)
class _Wait:
    """One coroutine waiting on one handle; `change` is what woke it (None: time ran out)."""

    handle: int
    finish_only: bool
    event: anyio.Event = field(default_factory=anyio.Event)
    change: JobChange | None = None


class JobWatcher:
    """Turns the library's "some job changed" fd into per-handle wake-ups.

    `wait_finished` wakes on the job's finish only; `wait_changed` on any change of it
    (progress or state), returning the change; `latest` reads the last change drained;
    `follow` hands every progress move of a job to a listener as it is drained, so that a
    run that follows its job wakes for the finish only.
    Draining is destructive, so a process has one watcher per library (`for_library`);
    every replica in the process starts `run`, and one of them at a time reads the fd
    (the next takes over when it stops). Changes are recorded even for handles nobody
    waits on yet, so a wait that starts after the job finished returns at once; forget()
    drops the record (and ends its waits) before free().

    Wait deadlines sit in one heap that the reader also serves, on a grid of TICK_S:
    thousands of runs waiting for their next poll cost one timer, not a cancel scope and a
    loop timer each, and one wake-up per tick at most.
    """

    _by_library: ClassVar[dict[int, "JobWatcher"]] = {}

    def __init__(self, lib: NativeLibrary) -> None:
        self._lib = lib
        self._latest: dict[int, JobChange] = {}
        self._waits: dict[int, list[_Wait]] = {}
        self._listeners: dict[int, Callable[[int], None]] = {}
        self._reader = anyio.Lock()
        # (deadline, tie-breaker, wait); entries of waits already woken are skipped.
        self._deadlines: list[tuple[float, int, _Wait]] = []
        self._order = itertools.count()
        self._sleep: anyio.CancelScope | None = None
        self._sleep_until = math.inf

    @classmethod
    def for_library(cls, lib: NativeLibrary) -> "JobWatcher":
        """The process's watcher of `lib`."""
        watcher = cls._by_library.get(id(lib))
        if watcher is None:
            watcher = cls._by_library[id(lib)] = cls(lib)
        return watcher

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Drains changed jobs whenever the fd is readable and ends waits that ran out;
        runs until cancelled."""
        fd = self._lib.notify_fd()
        task_status.started()
        async with self._reader:
            while True:
                self._dispatch()
                self._expire(anyio.current_time())
                self._sleep_until = (
                    tick_after(self._deadlines[0][0]) if self._deadlines else math.inf
                )
                with anyio.CancelScope(deadline=self._sleep_until) as self._sleep:
                    await anyio.wait_readable(fd)

    def _dispatch(self) -> None:
        # locals: this runs per step of every job
        latest, waits_by_handle, listeners = self._latest, self._waits, self._listeners
        for change in self._lib.drain_changes():
            latest[change.handle] = change
            listener = listeners.get(change.handle)
            if listener is not None and not change.state.finished:
                listener(change.progress)
            waits = waits_by_handle.get(change.handle)
            if waits is not None:
                self._wake(change, waits)

    def _wake(self, change: JobChange, waits: list[_Wait]) -> None:
        finished = change.state.finished
        still_waiting = []
        for wait in waits:
            if wait.finish_only and not finished:
                still_waiting.append(wait)
            else:
                wait.change = change
                wait.event.set()
        if still_waiting:
            self._waits[change.handle] = still_waiting
        else:
            del self._waits[change.handle]

    def _expire(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, wait = heapq.heappop(self._deadlines)
            self._drop(wait)
            wait.event.set()

    def _drop(self, wait: _Wait) -> None:
        waits = self._waits.get(wait.handle)
        if waits is not None and wait in waits:
            waits.remove(wait)
            if not waits:
                del self._waits[wait.handle]

    async def _wait(self, handle: int, timeout_s: float, *, finish_only: bool) -> JobChange | None:
        wait = _Wait(handle, finish_only)
        self._waits.setdefault(handle, []).append(wait)
        deadline = anyio.current_time() + timeout_s
        heapq.heappush(self._deadlines, (deadline, next(self._order), wait))
        if tick_after(deadline) < self._sleep_until and self._sleep is not None:
            self._sleep.cancel()  # the reader sleeps too long for this wait: re-arm it
        try:
            await wait.event.wait()
        finally:
            self._drop(wait)  # cancelled while waiting: nobody is left to wake
        return wait.change

    async def wait_finished(self, handle: int, timeout_s: float) -> bool:
        """True as soon as the job finished (also if it already had), False after timeout_s."""
        if self.finished(handle):
            return True
        change = await self._wait(handle, timeout_s, finish_only=True)
        return change is not None

    async def wait_changed(self, handle: int, timeout_s: float) -> JobChange | None:
        """The job's next change (a step done, its start, its finish) as soon as it is
        drained; at once if the job already finished; None after timeout_s."""
        latest = self._latest.get(handle)
        if latest is not None and latest.state.finished:
            return latest
        return await self._wait(handle, timeout_s, finish_only=False)

    def follow(self, handle: int, on_progress: Callable[[int], None]) -> None:
        """Calls `on_progress(progress)` on the loop, as the reader drains them, with the
        job's progress moves (its last one at once if one was drained already) until
        forget(); never with its finish, which wakes its waiters as ever."""
        self._listeners[handle] = on_progress
        latest = self._latest.get(handle)
        if latest is not None and not latest.state.finished:
            on_progress(latest.progress)

    def followed(self, handle: int) -> bool:
        return handle in self._listeners

    def latest(self, handle: int) -> JobChange | None:
        """The job's last change drained (None if none since it started or was forgotten)."""
        return self._latest.get(handle)

    def finished(self, handle: int) -> bool:
        """Whether the watcher has seen the job finish (without waiting)."""
        latest = self._latest.get(handle)
        return latest is not None and latest.state.finished

    def forget(self, handle: int) -> None:
        """Drops any record of the handle and ends its waits (as timed out); call right
        before freeing it."""
        self._latest.pop(handle, None)
        self._listeners.pop(handle, None)
        for wait in self._waits.pop(handle, []):
            wait.event.set()
