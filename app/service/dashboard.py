"""What the dashboard and /metrics read: pages of tasks, counts, the last hour's finishes,
replicas and heartbeats (from Redis, as `taskbeat heartbeats` reads them)."""

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.domain.heartbeats import is_stale
from app.domain.models import AttemptPublic, TaskEvent, TaskPublic, TaskStatus, utcnow
from app.observe.metrics import Metrics
from app.service.algorithms import AlgorithmService
from app.service.tasks import TaskService
from app.store import dashboard as reads
from app.store.cursors import decode_cursor

OVERVIEW_CACHE_S = 2.0
CHART_MINUTES = 60
FAILED_STATUSES = frozenset({TaskStatus.FAILED, TaskStatus.TIMED_OUT})


@dataclass(frozen=True, slots=True)
class Beat:
    """A running task's heartbeat as Redis holds it."""

    task_id: str
    age_s: float
    progress: int | None
    replica: str | None
    stale: bool


@dataclass(slots=True)
class ReplicaView:
    replica_id: str
    beat_age_s: float | None  # None: no beat in Redis (gone)
    lease_left_s: float | None  # negative: lapsed; None: no lease row
    running: int
    stale_tasks: int = 0
    alive: bool = False


@dataclass(slots=True)
class Overview:
    counts: dict[str, dict[TaskStatus, int]]
    totals: dict[TaskStatus, int]
    minutes: list[str]
    succeeded_per_minute: list[int]
    failed_per_minute: list[int]
    replicas_alive: int
    read_at: float = field(default_factory=time.monotonic)


@dataclass
class Dashboard:
    service: TaskService
    algorithm_service: AlgorithmService
    _overview: Overview | None = None

    @property
    def stale_after_s(self) -> float:
        return self.service.settings.lease_duration_s

    async def tasks_page(
        self, where: reads.TaskFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[TaskPublic], str | None]:
        after = None if cursor is None else decode_cursor(cursor)
        found, next_cursor = await self.service.store.db.read(
            lambda conn: reads.page(conn, where=where, limit=limit, after=after)
        )
        return await self.service.public(found), next_cursor

    async def task_detail(
        self, task_id: str
    ) -> tuple[TaskPublic, list[TaskEvent], list[AttemptPublic]]:
        """The task, its transitions, and every run from the attempts table."""
        task = await self.service.get(task_id)
        events = await self.service.store.task_history(task_id=task_id)
        return task, events, await self.service.attempts(task_id)

    async def overview(self) -> Overview:
        """Counts and the chart, read at most every OVERVIEW_CACHE_S however many viewers."""
        cached = self._overview
        if cached is not None and time.monotonic() - cached.read_at < OVERVIEW_CACHE_S:
            return cached
        now = utcnow().replace(second=0, microsecond=0)
        since = now - timedelta(minutes=CHART_MINUTES - 1)
        db = self.service.store.db
        pairs = await db.read(reads.counts)
        per_minute = await db.read(lambda conn: reads.finished_per_minute(conn, since=since))
        # an algorithm with no tasks yet shows zeros
        names = set(self.service.registry.names()) | {algorithm for algorithm, _, _ in pairs}
        counts = {name: dict.fromkeys(TaskStatus, 0) for name in sorted(names)}
        totals = dict.fromkeys(TaskStatus, 0)
        for algorithm, status, count in pairs:
            counts[algorithm][status] += count
            totals[status] += count
        minutes = [
            (since + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M") for i in range(CHART_MINUTES)
        ]
        succeeded, failed = dict.fromkeys(minutes, 0), dict.fromkeys(minutes, 0)
        for minute, status, count in per_minute:
            if minute in succeeded and status is TaskStatus.SUCCEEDED:
                succeeded[minute] += count
            elif minute in failed and status in FAILED_STATUSES:
                failed[minute] += count
        replicas = await self.replicas()
        self._overview = Overview(
            counts=counts,
            totals=totals,
            minutes=minutes,
            succeeded_per_minute=list(succeeded.values()),
            failed_per_minute=list(failed.values()),
            replicas_alive=sum(1 for replica in replicas if replica.alive),
        )
        return self._overview

    async def beats(self) -> list[Beat]:
        """Every task in the heartbeat set, oldest beat first, flagged as the CLI flags them."""
        live = self.service.live
        keys = live.keys
        pipe = live.client.pipeline(transaction=False)
        pipe.zrange(keys.heartbeats, 0, -1, withscores=True)
        pipe.hgetall(keys.progress)
        pipe.hgetall(keys.task_replica)
        beats, progress, owners = await pipe.execute()
        now = time.time()
        return [
            Beat(
                task_id=task_id,
                age_s=round(now - beat, 1),
                progress=int(progress[task_id]) if task_id in progress else None,
                replica=owners.get(task_id),
                stale=is_stale(beat_at_s=beat, now_s=now, stale_after_s=self.stale_after_s),
            )
            for task_id, beat in sorted(beats, key=lambda pair: pair[1])
        ]

    async def replicas(self) -> list[ReplicaView]:
        """Every replica Redis or the database knows: beat age, lease, running count."""
        live = self.service.live
        scored: list[tuple[str, float]] = await live.client.zrange(
            live.keys.replicas, 0, -1, withscores=True
        )  # type: ignore[assignment]
        replica_beats = dict(scored)
        db = self.service.store.db
        leases = await db.read(reads.leases)
        running = await db.read(reads.running_by_owner)
        now_s, now = time.time(), utcnow()
        views = {}
        for replica_id in sorted(set(replica_beats) | set(leases)):
            beat = replica_beats.get(replica_id)
            lease = leases.get(replica_id)
            lease_left_s = None if lease is None else (lease - now).total_seconds()
            views[replica_id] = ReplicaView(
                replica_id=replica_id,
                beat_age_s=None if beat is None else round(now_s - beat, 1),
                lease_left_s=None if lease_left_s is None else round(lease_left_s, 1),
                running=running.get(replica_id, 0),
                alive=lease_left_s is not None and lease_left_s > 0,
            )
        for beat_of_task in await self.beats():
            view = views.get(beat_of_task.replica or "")
            if view is not None and beat_of_task.stale:
                view.stale_tasks += 1
        return list(views.values())

    async def algorithms(self) -> list[dict[str, Any]]:
        """Each algorithm's policy in force, with `running` and `waiting` over the cluster."""
        return await self.algorithm_service.list()

    async def algorithm(self, name: str) -> dict[str, Any]:
        """One algorithm's policy in force and its live figures (NotFound if unknown)."""
        return await self.algorithm_service.get(name)

    async def refresh_gauges(self, metrics: Metrics) -> None:
        """Sets the gauges /metrics shows to what this replica holds now."""
        runner = self.service.runner
        for algorithm, count in runner.active_counts().items():
            metrics.tasks_running.labels(algorithm).set(count)
        db = self.service.store.db
        try:
            lease_until = await db.read(lambda conn: reads.lease_of(conn, runner.replica_id))
            figures: dict[str, tuple[int, int]] | None = await self.service.store.queue_figures()
        except (SQLAlchemyError, OSError):
            lease_until = figures = None  # the database is away: the last figures stand
        if lease_until is not None:
            # renewed at (end of lease - its length): the row says when, on any replica
            left_s = (lease_until - utcnow()).total_seconds()
            metrics.lease_age.set(max(0.0, self.service.settings.lease_duration_s - left_s))
        now = utcnow()
        for name, policy in runner.policies.current.items():
            if figures is not None:
                metrics.tasks_waiting.labels(name).set(figures.get(name, (0, 0))[1])
            metrics.algorithm_paused.labels(name).set(1 if policy.paused_at(now) else 0)
        live = await self.service.live.progress_and_heartbeats(list(runner.running_progress()))
        ages = [(now - beat).total_seconds() for _, beat in live.values() if beat is not None]
        metrics.heartbeat_age_max.set(max(ages, default=0.0))
