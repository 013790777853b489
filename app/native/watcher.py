"""Wakes coroutines when their native job finishes (from the library's notify fd) or when
their wait runs out, with one timer for all waits instead of one per wait."""

import heapq
import itertools
import math
from typing import ClassVar

import anyio
import anyio.abc

from app.native._lib import NativeLibrary


class JobWatcher:
    """Turns the library's "some job finished" fd into a per-handle anyio.Event.

    Draining is destructive, so a process has one watcher per library (`for_library`);
    every replica in the process starts `run`, and one of them at a time reads the fd
    (the next takes over when it stops). Finishes are recorded even for handles nobody
    waits on yet, so a wait that starts after the job finished returns at once; forget()
    drops the record before free().

    Wait deadlines sit in one heap that the reader also serves: thousands of runs waiting
    for their next poll cost one timer, not a cancel scope and a loop timer each.
    """

    _by_library: ClassVar[dict[int, "JobWatcher"]] = {}

    def __init__(self, lib: NativeLibrary) -> None:
        self._lib = lib
        self._finished: set[int] = set()
        self._events: dict[int, anyio.Event] = {}
        self._reader = anyio.Lock()
        # (deadline, tie-breaker, handle, event); stale entries are skipped when due.
        self._deadlines: list[tuple[float, int, int, anyio.Event]] = []
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
        """Drains finished jobs whenever the fd is readable and ends waits that ran out;
        runs until cancelled."""
        fd = self._lib.notify_fd()
        task_status.started()
        async with self._reader:
            while True:
                self._dispatch()
                self._expire(anyio.current_time())
                self._sleep_until = self._deadlines[0][0] if self._deadlines else math.inf
                with anyio.CancelScope(deadline=self._sleep_until) as self._sleep:
                    await anyio.wait_readable(fd)

    def _dispatch(self) -> None:
        for handle in self._lib.drain_finished():
            self._finished.add(handle)
            event = self._events.pop(handle, None)
            if event is not None:
                event.set()

    def _expire(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, handle, event = heapq.heappop(self._deadlines)
            if self._events.get(handle) is event:  # else it was woken, or forgotten
                del self._events[handle]
                event.set()

    async def wait_finished(self, handle: int, timeout_s: float) -> bool:
        """True as soon as the job finished (also if it already had), False after timeout_s."""
        if handle in self._finished:
            return True
        event = self._events.get(handle)
        if event is None:
            event = self._events[handle] = anyio.Event()
        deadline = anyio.current_time() + timeout_s
        heapq.heappush(self._deadlines, (deadline, next(self._order), handle, event))
        if deadline < self._sleep_until and self._sleep is not None:
            self._sleep.cancel()  # the reader sleeps too long for this wait: re-arm it
        await event.wait()
        return handle in self._finished

    def finished(self, handle: int) -> bool:
        """Whether the watcher has seen the job finish (without waiting)."""
        return handle in self._finished

    def forget(self, handle: int) -> None:
        """Drops any record of the handle; call right before freeing it."""
        self._finished.discard(handle)
        self._events.pop(handle, None)
