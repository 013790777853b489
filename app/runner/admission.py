"""Admission: the database is the one queue, and a replica with free run slots takes the
next due tasks from it (app.store.claims), within each algorithm's cluster-wide limit.

A replica learns at once that work waits through a hint on Redis pub/sub (published by
whoever queued it, received through the replica's one subscription); a slow periodic
look catches what a lost hint missed. Work that falls due later (a delayed start, a
retry's backoff, a pause's end) sets a timer: on the replica that queued it, on the
others through a `due:` hint, and on every replica through the next due time it reads
from the database with the queue figures (so also after a replica died or all restarted).
The policies in force are read again from the database at least every POLICY_REFRESH_S,
so a change made on any replica is in force on all of them within a second.
"""

import logging
import math
import time
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup, TaskStatus
from pydantic import ValidationError

from app.core.config import Settings
from app.core.faults import every, report_fault
from app.domain.errors import InvalidRequest, NotFound, Saturated, StoreUnavailable
from app.domain.models import StoredTask, utcnow
from app.domain.models import TaskStatus as Status
from app.domain.outcome import Outcome
from app.domain.policy import Policy, PolicyFields
from app.live.state import LiveState
from app.live.updates import UpdateHub
from app.observe.metrics import Metrics
from app.store import TaskStore
from app.store.policies import in_force

log = logging.getLogger(__name__)
PERIODIC_LOOK_S = 2.0
POLICY_REFRESH_S = 0.5
FIGURES_REFRESH_S = 2.0  # the backlog counts behind max_waiting's 429 (a read of the queue)
FAULT_DELAY_S = 1.0
HINT_WORK, HINT_POLICY, HINT_SCHEDULE, HINT_DUE = "work", "policy", "schedule", "due:"
# A look for work due at T is made just after T (the claim compares with its own clock).
DUE_GRACE_S = 0.02
MAX_TIMERS = 1024  # due times kept; later ones are read again from the database


def due_hint(at: datetime) -> str:
    """The hint that tells the replicas work falls due at `at`."""
    return f"{HINT_DUE}{at.timestamp():.6f}"


class RunSlots(Protocol):
    """What admission needs of the runner (app.runner.runner.Runner): its run slots, and
    the replica's store, live state and updates hub."""

    store: TaskStore
    live: LiveState
    updates: UpdateHub
    metrics: Metrics
    replica_id: str

    @property
    def accepting(self) -> bool: ...

    @property
    def free_slots(self) -> int: ...

    def release_slot(self) -> None: ...

    def start_claimed(self, task: StoredTask) -> bool:
        """Starts the run of a task moved to running for this replica (False: not here)."""


class PolicyBook:
    """The policies in force on this replica: configuration, then the database's fields."""

    def __init__(self, *, settings: Settings, store: TaskStore, names: Sequence[str]) -> None:
        self._settings = settings
        self._store = store
        self.configured = {name: settings.policy_of(name) for name in names}
        self.current = dict(self.configured)

    def policy(self, name: str) -> Policy:
        """The policy in force (the configured defaults for an algorithm not registered)."""
        return self.current.get(name) or self._settings.policy_of(name)

    async def refresh(self) -> None:
        stored = await self._store.policy_fields()
        self.current = {
            name: in_force(policy, stored.get(name, {})) for name, policy in self.configured.items()
        }

    async def change(self, name: str, changes: dict[str, Any]) -> Policy:
        """Validates and stores a change (None resets a field to its configured value); the
        caller tells the replicas (a `policy` hint). InvalidRequest names the field."""
        if name not in self.configured:
            raise NotFound(f"no algorithm {name!r}")
        try:
            given = PolicyFields.model_validate(changes).given()
            wanted = {key: given.get(key) for key in changes}
            stored = await self._store.policy_fields()
            merged = {**stored.get(name, {}), **wanted}
            self.configured[name].with_fields({k: v for k, v in merged.items() if v is not None})
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or "body"
            raise InvalidRequest(f"{field}: {error['msg']}") from None
        await self._store.change_policy(name=name, changes=wanted)
        await self.refresh()
        return self.current[name]


class Admission:
    """Takes due tasks from the queue into this replica's free run slots."""

    def __init__(self, *, policies: PolicyBook, runs: RunSlots) -> None:
        self._store = runs.store
        self._live = runs.live
        self._updates = runs.updates
        self._replica_id = runs.replica_id
        self._policies = policies
        self._runs = runs
        self._wake = anyio.Event()
        self._look_asked = True  # a wake that wants a claim (not just a new timer)
        self._due_at: set[float] = set()  # unix times queued work falls due
        # Whether the queue may hold due work this replica could take once a slot frees
        # (a look that found none spares the database a claim at every run's end).
        self._may_hold_work = True
        self.figures: dict[str, tuple[int, int]] = {}  # algorithm -> (running, waiting)
        self._group: TaskGroup | None = None

    def wake(self) -> None:
        """Looks at the queue again soon (coalesced: one look for many wakes)."""
        self._may_hold_work = True
        self._look_asked = True
        self._wake.set()

    def slot_freed(self) -> None:
        """A local run ended: its slot (and the algorithm's room) is free for the queue."""
        if self._may_hold_work:
            self.wake()

    def retry_scheduled(self, task_id: str, attempt: int, outcome: Outcome, at: datetime) -> None:
        """A local run ended into a retry: look again when it is due, and tell watchers."""
        log.info("task %s: attempt %d %s; next at %s", task_id, attempt, outcome.status, at)
        self.wake_at(at)
        self._updates.status_changed(task_id, Status.PENDING, attempt, 0)

    def wake_at(self, at: datetime) -> None:
        """Looks at the queue again just after `at`, when work falls due."""
        self._add_timer(at.timestamp())

    def _add_timer(self, at_s: float) -> None:
        if at_s <= time.time() or at_s in self._due_at:
            return
        self._due_at.add(at_s)
        if len(self._due_at) > MAX_TIMERS:
            self._due_at.discard(max(self._due_at))
        self._wake.set()  # the loop sleeps until its next look: it may now be sooner

    def queued(self, algorithm: str) -> None:
        """Counts a task this replica queued now, before the next look counts it."""
        running, waiting = self.figures.get(algorithm, (0, 0))
        self.figures[algorithm] = (running, waiting + 1)

    def waiting(self, algorithm: str | None = None) -> int:
        """Tasks waiting in the queue over the cluster (of `algorithm`), as of the last look."""
        if algorithm is None:
            return sum(waiting for _, waiting in self.figures.values())
        return self.figures.get(algorithm, (0, 0))[1]

    def check_capacity(self, algorithm: str) -> None:
        """Raises when this replica should not take one more task of `algorithm` now."""
        if not self._runs.accepting:
            raise StoreUnavailable("this replica is shutting down; retry on another one")
        policy = self._policies.policy(algorithm)
        waiting = self.waiting(algorithm)
        if waiting >= policy.max_waiting:
            raise Saturated(
                f"{waiting} tasks of {algorithm!r} already wait (max_waiting {policy.max_waiting})",
                retry_after_s=max(1, math.ceil(policy.poll_interval_s)),
            )

    def created(self, task: StoredTask, *, reserved: bool) -> None:
        """Runs a task its create stored running for this replica; else, as it waits in the
        queue, tells the replicas (this one too) to look."""
        if reserved:
            self._runs.release_slot()
        mine = task.status is Status.RUNNING and task.owner == self._replica_id
        if (mine and self._runs.start_claimed(task)) or self._group is None:
            return
        self.queued(task.algorithm)
        due_at = task.next_attempt_at
        if due_at is not None and due_at > utcnow():
            self.wake_at(due_at)  # a delayed start: the look that follows its time takes it
            self._group.start_soon(self.publish, due_hint(due_at))
        else:
            self._group.start_soon(self.publish)

    async def publish(self, hint: str = HINT_WORK) -> None:
        """Tells every replica (this one too) that work waits, falls due later (a `due:`
        hint) or that a policy changed; a lost hint only delays things until the periodic
        look (or the next due time read from the database)."""
        if not hint.startswith(HINT_DUE):
            self.wake()
        live = self._live
        try:
            await live.client.publish(live.keys.work_channel, hint)
        except Exception as exc:
            report_fault("work hint", exc)

    def _next_look_s(self) -> float:
        """Seconds until the next look: the periodic one, or just after work falls due."""
        pauses = [p.paused_until for p in self._policies.current.values() if p.paused]
        for until in pauses:
            if until is not None:
                self._add_timer(until.timestamp())
        now_s = time.time()
        self._due_at = {at_s for at_s in self._due_at if at_s > now_s - DUE_GRACE_S}
        upcoming = [at_s - now_s + DUE_GRACE_S for at_s in self._due_at]
        return max(0.0, min([PERIODIC_LOOK_S, *upcoming]))

    async def admit_once(self) -> int:
        """One claim for the free slots; returns how many runs it started."""
        slots = self._runs.free_slots
        if not self._runs.accepting or slots <= 0:
            return 0
        claim = await self._store.claim(
            owner=self._replica_id, base=self._policies.configured, slots=slots
        )
        for task in claim.cancelled:
            self._runs.metrics.task_finished(task.algorithm, Status.CANCELLED)
            self._updates.status_changed(task.task_id, Status.CANCELLED, task.attempt)
        for task in claim.started:
            self._runs.start_claimed(task)
        self._may_hold_work = claim.more_waiting or len(claim.started) == slots
        return len(claim.started)

    async def _admit_loop(self) -> None:
        while True:
            with anyio.move_on_after(self._next_look_s()) as sleep:
                await self._wake.wait()
            self._wake = anyio.Event()
            if not (sleep.cancelled_caught or self._look_asked):
                continue  # only a new timer: sleep again, until the sooner time
            self._look_asked = False
            try:
                await self.admit_once()
            except Exception as exc:
                report_fault("admission", exc)
                await anyio.sleep(FAULT_DELAY_S)

    async def _refresh(self) -> None:
        await self._policies.refresh()

    async def _count(self) -> None:
        self.figures = await self._store.queue_figures()
        # what a lost hint, a dead replica or a restart left without a timer here
        next_due = await self._store.next_due_at(names=sorted(self._policies.configured))
        if next_due is not None:
            self.wake_at(next_due)

    async def on_hint(self, hint: str) -> None:
        """A hint from the replicas' one subscription (app.live.subscriber)."""
        if hint == HINT_SCHEDULE:
            return  # the scheduler's; the tasks a tick makes come with a work hint
        if hint.startswith(HINT_DUE):
            try:
                at_s = float(hint.removeprefix(HINT_DUE))
            except ValueError:
                log.warning("work hint %r ignored: not a due time", hint)
                return
            if at_s > time.time():
                self._add_timer(at_s)
                return
        if hint == HINT_POLICY:
            await self._policies.refresh()
        self.wake()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await self._store.ensure_policies(names=sorted(self._policies.configured))
        await self._refresh()
        await self._count()
        async with anyio.create_task_group() as tg:
            self._group = tg
            tg.start_soon(partial(every, POLICY_REFRESH_S, self._refresh, what="policy refresh"))
            tg.start_soon(partial(every, FIGURES_REFRESH_S, self._count, what="queue figures"))
            tg.start_soon(self._admit_loop)
            self.wake()  # what waited while no replica was up
            task_status.started()
