"""The scheduler: fires each schedule's ticks into the queue, on every replica, with no
leader. Every replica wakes at the next tick, and each one's firing of a tick inserts the
same key (schedule, scheduled_for) ON CONFLICT DO NOTHING (app.store.schedules), so the
tick makes one task over the cluster however many replicas fire it. Its task then waits in
the queue like any other, and admission runs it wherever there is room.

The schedules are read again at every wake, and at least every REFRESH_S, so a change made
on any replica is in force on all of them within a second (at once with its hint).
"""

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import anyio
from anyio.abc import TaskStatus

from app.core.faults import report_fault
from app.domain.cadence import CadenceError, zone_names
from app.domain.models import StoredTask, new_task_id, utcnow
from app.domain.models import TaskStatus as Status
from app.domain.schedule import StoredSchedule
from app.runner.admission import HINT_SCHEDULE, Admission, PolicyBook
from app.store import TaskStore
from app.store.schedules import Firing

log = logging.getLogger(__name__)
REFRESH_S = 1.0
WAKE_MARGIN_S = 0.005  # wake just after the tick, never just before it
FAULT_DELAY_S = 1.0


class Scheduler:
    """Fires the due ticks of every schedule, as one of many replicas doing the same."""

    def __init__(
        self,
        *,
        store: TaskStore,
        policies: PolicyBook,
        admission: Admission,
        replica_id: str,
        declared: Mapping[str, dict[str, Any]],
    ) -> None:
        self._store = store
        self._policies = policies
        self._admission = admission
        self._replica_id = replica_id
        self._declared = dict(declared)
        self._schedules: list[StoredSchedule] = []
        self._wake = anyio.Event()
        self._watching_since = utcnow()
        self._warned: set[str] = set()

    def changed(self) -> None:
        """A schedule changed: read them again now."""
        self._wake.set()

    async def on_hint(self, hint: str) -> None:
        """A hint from the replicas' one subscription (app.live.subscriber)."""
        if hint == HINT_SCHEDULE:
            self.changed()

    def next_fire_at(self, schedule: StoredSchedule, now: datetime) -> datetime | None:
        if schedule.paused:
            return None
        try:
            return schedule.cadence.next_after(now)
        except CadenceError:
            return None

    def _sleep_s(self) -> float:
        now = utcnow()
        upcoming = [self.next_fire_at(schedule, now) for schedule in self._schedules]
        waits = [(at - now).total_seconds() + WAKE_MARGIN_S for at in upcoming if at]
        return max(0.0, min([REFRESH_S, *waits]))

    def _warn(self, schedule: StoredSchedule, problem: str) -> None:
        """Logs once per schedule why it cannot fire (the others go on)."""
        if schedule.name not in self._warned:
            self._warned.add(schedule.name)
            log.warning("schedule %s does not fire: %s", schedule.name, problem)

    def _firing(self, schedule: StoredSchedule, now: datetime) -> Firing | None:
        since = max(schedule.since_at, schedule.last_tick_at or schedule.since_at)
        try:
            due = schedule.cadence.due(
                since=since,
                watching_since=self._watching_since,
                now=now,
                catchup_s=schedule.catchup_s,
            )
        except CadenceError as exc:  # stored before this zone database or cronsim refused it
            self._warn(schedule, str(exc))
            return None
        if not due.ticks:
            return None
        if schedule.algorithm not in self._policies.configured:
            self._warn(schedule, f"no algorithm {schedule.algorithm!r}")
            return None
        policy = self._policies.policy(schedule.algorithm)
        priority = policy.priority if schedule.priority is None else schedule.priority
        tick_tasks = [
            StoredTask(
                task_id=new_task_id(),
                algorithm=schedule.algorithm,
                status=Status.PENDING,
                input=schedule.input,
                timeout_s=policy.timeout_s,
                max_attempts=policy.max_attempts,
                priority=priority,
                created_at=now,
                schedule=schedule.name,
                scheduled_for=tick,
            )
            for tick in due.ticks
        ]
        return Firing(schedule.name, tick_tasks, due.dealt_until, schedule.overlap == "skip")

    async def fire_once(self) -> list[StoredTask]:
        """Reads the schedules and fires what is due; returns the tasks this replica made
        (a tick another replica fired first makes none here)."""
        self._schedules = await self._store.all_schedules()
        now = utcnow()
        firings = [self._firing(s, now) for s in self._schedules if not s.paused]
        wanted = [firing for firing in firings if firing is not None]
        if not wanted:
            return []
        made = await self._store.fire(firings=wanted, replica=self._replica_id)
        for task in made:
            log.info("schedule %s: task %s for %s", task.schedule, task.task_id, task.scheduled_for)
            self._admission.queued(task.algorithm)
        if made:
            await self._admission.publish()  # the replicas (this one too) look at the queue
        return made

    async def _loop(self) -> None:
        while True:
            with anyio.move_on_after(self._sleep_s()):
                await self._wake.wait()
            self._wake = anyio.Event()
            try:
                await self.fire_once()
            except Exception as exc:
                report_fault("scheduler", exc)
                await anyio.sleep(FAULT_DELAY_S)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self._watching_since = utcnow()
        await anyio.to_thread.run_sync(zone_names)  # the zone database's file reads, once
        await self._store.apply_declared_schedules(declared=self._declared)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._loop)
            self.changed()  # the first look at once: catch up what came while none was up
            task_status.started()
