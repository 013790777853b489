"""Task updates across replicas: every status change and progress move of a task is published
on one Redis channel, and one subscriber per replica hands each message to the local waiters
of that task (long-polls, event streams) and to the local run of that task.

A message is a hint, never the truth: a waiter re-reads the task from the database when a
status message arrives, so a lost message costs latency, never correctness. When Redis is
away, a publish is delivered to this replica's waiters directly, and once the subscription
(app.live.subscriber) is back every waiter is told to re-read (`resync`).
"""

import enum
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import anyio.abc
import redis.asyncio as aioredis

from app.core.batching import Outbox
from app.core.faults import REDIS_AWAY
from app.domain.models import TaskStatus
from app.live.keys import RedisKeys

log = logging.getLogger(__name__)
MAX_BUFFERED_UPDATES = 256
# Lists of updates per message (a heartbeat's progress of every run is one list).
MAX_LISTS_PER_MESSAGE = 1024
# A run's progress moves go out at most this often (the latest wins): thousands of runs
# stepping make a few messages a tick, not one per step; well inside the 100 ms promise.
PROGRESS_PUBLISH_INTERVAL_S = 0.05


class UpdateKind(enum.StrEnum):
    STATUS = "status"  # the task's status changed: re-read it
    PROGRESS = "progress"  # a run's progress moved
    RESYNC = "resync"  # messages may have been lost: re-read the task


@dataclass(frozen=True, slots=True)
class Update:
    """One message on the updates channel."""

    task_id: str
    kind: UpdateKind
    status: str | None = None
    attempt: int = 0
    progress: int = 0
    origin: str = ""  # the replica that published it


def encode_message(origin: str, updates: Sequence[Update]) -> str:
    """One message for many updates: status changes as a list, progress moves as a compact
    {task_id: [attempt, progress]} (a heartbeat carries thousands of those)."""
    statuses: list[tuple[str, str, str | None, int, int]] = []
    progress: dict[str, list[int]] = {}
    for update in updates:
        if update.kind is UpdateKind.PROGRESS:
            progress[update.task_id] = [update.attempt, update.progress]
        else:
            fields = (
                update.task_id,
                update.kind.value,
                update.status,
                update.attempt,
                update.progress,
            )
            statuses.append(fields)
    # The order of the keys is part of the format: see own_statuses.
    message = {"origin": origin, "statuses": statuses, "progress": progress}
    return json.dumps(message, separators=(",", ":"))


def message_prefix(origin: str) -> str:
    """How every message of `origin` starts (up to its status list)."""
    return '{"origin":' + json.dumps(origin) + ',"statuses":'


_decoder = json.JSONDecoder()


def decode_message(raw: str) -> tuple[str, list[Update], dict[str, list[int]]]:
    """(origin, status updates, progress by task id); nothing for a malformed message."""
    try:
        message = json.loads(raw)
        origin = str(message["origin"])
        statuses = [
            Update(task_id, UpdateKind(kind), status, attempt, progress, origin)
            for task_id, kind, status, attempt, progress in message["statuses"]
        ]
        progress = {
            str(task_id): [int(attempt), int(value)]
            for task_id, (attempt, value) in dict(message["progress"]).items()
        }
        return origin, statuses, progress
    except (ValueError, TypeError, KeyError):
        log.warning("ignored a malformed update message: %.200s", raw)
        return "", [], {}


def own_statuses(raw: str, *, prefix: str, origin: str) -> list[Update] | None:
    """The status updates of a message that starts with `prefix` (this replica's own),
    decoding its status list only: its progress part, the bulk, went to the local waiters
    from memory already. None for a message of another origin (or a malformed one)."""
    if not raw.startswith(prefix):
        return None
    try:
        statuses, _ = _decoder.raw_decode(raw, len(prefix))
        return [
            Update(task_id, UpdateKind(kind), status, attempt, progress, origin)
            for task_id, kind, status, attempt, progress in statuses
        ]
    except (ValueError, TypeError):
        return None


def event_id(status: TaskStatus, attempt: int, progress: int) -> int:
    """A number that grows with every visible change of a task, computed the same way on
    every replica: runs count up, and inside a run pending < running (by progress) < finished.
    A pending task waits for run `attempt + 1`; a finished one closes that same slot."""
    if status is TaskStatus.RUNNING:
        run, phase = attempt, 1
    else:
        run, phase = attempt + 1, 0 if status is TaskStatus.PENDING else 2
    return run * 1000 + phase * 200 + min(max(progress, 0), 100)


class Subscription:
    """One local waiter's queue of the updates of one task."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self._updates: deque[Update] = deque()
        self._ready = anyio.Event()

    def put(self, update: Update) -> None:
        if len(self._updates) >= MAX_BUFFERED_UPDATES:
            # A waiter this far behind re-reads instead of replaying every message.
            self._updates.clear()
            update = Update(self.task_id, UpdateKind.RESYNC)
        self._updates.append(update)
        self._ready.set()

    async def next(self) -> Update:
        while not self._updates:
            if self._ready.is_set():
                self._ready = anyio.Event()
            await self._ready.wait()
        return self._updates.popleft()


class UpdateHub:
    """Publishes task updates and fans them out to this replica's subscribers."""

    def __init__(self, client: "aioredis.Redis", keys: RedisKeys, replica_id: str) -> None:
        self.client = client
        self.keys = keys
        self.replica_id = replica_id
        # Called with every update another replica published (the runner's hook, see service).
        self.on_foreign_update: Callable[[Update], None] | None = None
        # Whether a task runs on this replica (foreign progress only matters for those).
        self.runs_here: Callable[[str], bool] = lambda _task_id: False
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._published_progress: dict[str, tuple[int, int]] = {}
        # task_id -> (attempt, progress) moved since the last progress publish.
        self._progress_due: dict[str, tuple[int, int]] = {}
        self._progress_queued = anyio.Event()
        self._own_prefix = message_prefix(replica_id)
        # Updates published meanwhile go out as one message; nobody waits for it.
        self.outbox: Outbox[Sequence[Update]] = Outbox(
            self._publish_together, max_batch=MAX_LISTS_PER_MESSAGE, name="updates"
        )

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Sends the outbox and, at most every PROGRESS_PUBLISH_INTERVAL_S, the progress
        moved meanwhile; started by the composition root with `tg.start`."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.outbox.run)
            task_status.started()
            while True:
                await self._progress_queued.wait()
                await anyio.sleep(PROGRESS_PUBLISH_INTERVAL_S)
                self._progress_queued = anyio.Event()
                self._send_progress_due()

    def _send_progress_due(self) -> None:
        due, self._progress_due = self._progress_due, {}
        if due:
            status = TaskStatus.RUNNING.value
            origin = self.replica_id
            self.outbox.put(
                [
                    Update(task_id, UpdateKind.PROGRESS, status, attempt, progress, origin)
                    for task_id, (attempt, progress) in due.items()
                ]
            )

    async def flush(self) -> None:
        """Returns once every update queued before the call has been sent (or dropped)."""
        self._send_progress_due()
        await self.outbox.flush()

    # ----- local waiters ---------------------------------------------------------------

    def subscriber_count(self, task_id: str | None = None) -> int:
        if task_id is not None:
            return len(self._subscriptions.get(task_id, ()))
        return sum(len(subs) for subs in self._subscriptions.values())

    @asynccontextmanager
    async def subscribe(self, task_id: str) -> AsyncIterator[Subscription]:
        """Updates of `task_id` while the context is open. Subscribe before reading the
        task, so that no change between the read and the subscription goes unseen."""
        subscription = Subscription(task_id)
        self._subscriptions.setdefault(task_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscriptions = self._subscriptions.get(task_id)
            if subscriptions is not None:
                subscriptions.discard(subscription)
                if not subscriptions:
                    del self._subscriptions[task_id]

    def _dispatch(self, update: Update) -> None:
        for subscription in list(self._subscriptions.get(update.task_id, ())):
            subscription.put(update)
        if update.origin != self.replica_id and self.on_foreign_update is not None:
            try:
                self.on_foreign_update(update)
            except Exception:
                log.exception("task %s: applying a foreign update failed", update.task_id)

    def receive(self, raw: str) -> None:
        """Hands one message of the updates channel to the local waiters (the subscriber's
        handler)."""
        own = own_statuses(raw, prefix=self._own_prefix, origin=self.replica_id)
        if own is not None:
            for update in own:
                self._dispatch(update)
            return
        origin, statuses, progress = decode_message(raw)
        for update in statuses:
            self._dispatch(update)
        foreign = origin != self.replica_id
        for task_id, (attempt, value) in progress.items():
            # Only tasks someone here listens to (or runs, for another replica's news).
            if task_id in self._subscriptions or (foreign and self.runs_here(task_id)):
                self._dispatch(
                    Update(task_id, UpdateKind.PROGRESS, "running", attempt, value, origin)
                )

    def resync_all(self) -> None:
        """Tells every local waiter to re-read its task: messages may have been missed."""
        for task_id, subscriptions in list(self._subscriptions.items()):
            for subscription in list(subscriptions):
                subscription.put(Update(task_id, UpdateKind.RESYNC))

    # ----- publishing ------------------------------------------------------------------

    async def _publish_together(self, lists: Sequence[Sequence[Update]]) -> None:
        """One message; when Redis is away, local waiters still hear the updates."""
        updates = [update for updates in lists for update in updates]
        try:
            message = encode_message(self.replica_id, updates)
            await self.client.publish(self.keys.updates_channel, message)
        except REDIS_AWAY as exc:
            log.warning("redis unavailable, updates delivered on this replica only: %s", exc)
            for update in updates:
                self._dispatch(update)

    def status_changed(
        self, task_id: str, status: TaskStatus, attempt: int, progress: int = 0
    ) -> None:
        self._progress_due.pop(task_id, None)  # the status (and a re-read) supersedes it
        if status.finished:
            self._published_progress.pop(task_id, None)
        self.outbox.put(
            [Update(task_id, UpdateKind.STATUS, status.value, attempt, progress, self.replica_id)]
        )

    def progress_changed(self, task_id: str, attempt: int, progress: int) -> None:
        """Hands a progress move to this replica's waiters at once, from memory, and to the
        other replicas' through the channel within PROGRESS_PUBLISH_INTERVAL_S (coalesced:
        the latest move of each run; this replica skips its own echo undecoded)."""
        self._published_progress[task_id] = (attempt, progress)
        if task_id in self._subscriptions:
            running = TaskStatus.RUNNING.value
            origin = self.replica_id
            self._dispatch(Update(task_id, UpdateKind.PROGRESS, running, attempt, progress, origin))
        self._progress_due[task_id] = (attempt, progress)
        self._progress_queued.set()

    def publish_progress(self, running: Mapping[str, tuple[int, int]]) -> None:
        """Publishes the progress of the runs (task_id -> (attempt, progress)) that moved
        since it was last published; called from the heartbeat."""
        for task_id in set(self._published_progress) - set(running):
            del self._published_progress[task_id]
        status = TaskStatus.RUNNING.value
        moved = []
        for task_id, (attempt, progress) in running.items():
            if self._published_progress.get(task_id, (attempt, 0)) != (attempt, progress):
                self._published_progress[task_id] = (attempt, progress)
                moved.append(
                    Update(task_id, UpdateKind.PROGRESS, status, attempt, progress, self.replica_id)
                )
        if moved:
            self.outbox.put(moved)  # one message, however many runs moved
