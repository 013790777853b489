"""Batching. GroupCommit: concurrent writes of one kind share one transaction, and each
caller still waits until the transaction holding its own write has committed (or
failed), so durability is unchanged; what is shared is the per-transaction cost (driver
round trips, the commit, the fsync, the worker-thread hop), which is most of the cost of a
small write. The store batches its task lookups the same way.

Outbox: best-effort messages, sent in batches by a task of their own while senders go on.
"""

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(eq=False)
class _Pending(Generic[Item, Result]):
    item: Item
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Result | None = None
    error: BaseException | None = None


class GroupCommit(Generic[Item, Result]):
    """Runs `apply(items) -> results` (one result per item, same order) over whatever was
    submitted meanwhile, at most `max_batch` items at a time.

    No background task: a caller that finds no batch running leads one batch (the oldest
    waiting items, its own among them or ahead of it), then hands over; callers wait at
    most for the batch that holds their own item. A batch is shielded, so a leader whose
    request is cancelled still finishes the writes others wait on. A leader first yields
    once, so that the callers woken with it (runs whose jobs ended together) join its batch
    instead of waiting for a second one.
    """

    def __init__(
        self,
        apply: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        max_batch: int,
        name: str,
    ) -> None:
        self._apply = apply
        self._name = name
        self._max_batch = max_batch
        self._queue: list[_Pending[Item, Result]] = []
        self._leading = False
        self._batch_ended = anyio.Event()

    async def submit(self, item: Item) -> Result:
        pending: _Pending[Item, Result] = _Pending(item)
        self._queue.append(pending)
        while not pending.done.is_set():
            if self._leading:
                await self._batch_ended.wait()
                continue
            self._leading = True
            try:
                with anyio.CancelScope(shield=True):
                    await anyio.lowlevel.checkpoint()
                    await self._apply_one_batch()
            finally:
                self._leading = False
                self._batch_ended.set()
                self._batch_ended = anyio.Event()
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[return-value]

    async def _apply_one_batch(self) -> None:
        batch = self._queue[: self._max_batch]
        del self._queue[: self._max_batch]
        started = time.perf_counter()
        try:
            results = await self._apply([pending.item for pending in batch])
        except Exception as exc:
            for pending in batch:
                pending.error = exc
        else:
            for pending, result in zip(batch, results, strict=True):
                pending.result = result
        log.debug(
            "%s: %d in %.1f ms", self._name, len(batch), (time.perf_counter() - started) * 1000
        )
        for pending in batch:
            pending.done.set()


class Outbox(Generic[Item]):
    """Best-effort messages whose senders must not wait (Redis live keys, update hints):
    `put` queues an item and returns at once; the outbox's own task sends whatever queued
    meanwhile with one `send(items)` call, in order, at most `max_batch` items at a time.

    A sender pays an append, not a wait and a wake-up per item. `send` must not raise for an
    expected outage (it logs and recovers in its own way); anything else is logged and the
    batch is dropped, never the outbox.
    """

    def __init__(
        self, send: Callable[[Sequence[Item]], Awaitable[None]], *, max_batch: int, name: str
    ) -> None:
        self._send = send
        self._name = name
        self._max_batch = max_batch
        self._items: deque[Item] = deque()
        self._queued = anyio.Event()
        self._sent = anyio.Event()
        self._sending = False
        self._running = False

    def put(self, item: Item) -> None:
        self._items.append(item)
        self._queued.set()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Sends until cancelled; started with `tg.start` by whoever owns the outbox."""
        task_status.started()
        self._running = True
        try:
            while True:
                if not self._items:
                    self._queued = anyio.Event()
                    await self._queued.wait()
                await self._send_some(min(len(self._items), self._max_batch))
        finally:
            self._running = False
            self._sent.set()  # a flush waiting on this sender sends what is left itself

    async def _send_some(self, count: int) -> None:
        batch = [self._items.popleft() for _ in range(count)]
        self._sending = True
        try:
            await self._send(batch)
        except Exception:
            log.exception("%s: %d items not sent", self._name, len(batch))
        finally:
            self._sending = False
            self._sent.set()
            self._sent = anyio.Event()

    async def flush(self) -> None:
        """Returns once everything queued before the call has been sent (or dropped); sends
        it itself when the outbox's task is gone (a replica stopping after a fault)."""
        while self._items or self._sending:
            if not self._running and not self._sending:
                await self._send_some(len(self._items))
                continue
            await self._sent.wait()
