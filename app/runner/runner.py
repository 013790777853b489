"""One replica's runner: runs each task it admitted as an anyio task, and ends each once.

A run: admitted (moved to running by a claim or by its create, app.runner.admission) ->
submit -> poll until the job finishes (woken at once by the algorithm, else every poll
interval) -> persist the outcome or the retry (conditional on owner and attempt, so a
replica that lost the task writes nothing).
"""

import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import anyio.abc
from anyio.abc import TaskGroup

from app.algorithms.base import (
    Algorithm,
    AlgorithmError,
    InputRejected,
    PollFailed,
    StreamsProgress,
)
from app.algorithms.registry import Registry
from app.core.backoff import Backoff
from app.core.config import Settings
from app.domain.errors import InvalidRequest
from app.domain.models import StoredTask, TaskStatus
from app.domain.outcome import Outcome
from app.domain.policy import Policy
from app.live.state import LiveState
from app.live.updates import UpdateHub
from app.observe.logs import bind_run
from app.observe.metrics import Metrics
from app.runner.admission import Admission, PolicyBook
from app.runner.lag import LoopLagMonitor, RecentMs
from app.runner.policy import next_attempt_at, outcome_of, retry_delay_s
from app.store import TaskStore, lease_deadline

log = logging.getLogger(__name__)
CLEANUP_TIMEOUT_S = 5.0
FINAL_WRITE_RETRY_S = 300.0
FINAL_WRITE_FIRST_RETRY_S = 0.5
FINAL_WRITE_MAX_RETRY_S = 5.0
POLL_JITTER = 0.1
# The notice latency on /v1/stats covers the last this many finished runs.
NOTICE_WINDOW = 1000


@dataclass(eq=False)
class LocalRun:
    """A task that holds one of this replica's run slots."""

    task_id: str
    algorithm: str = ""
    attempt: int = 0
    max_attempts: int = 1
    progress: int = 0
    poll_failures: int = 0
    handle: Any = None
    adapter: Algorithm | None = None
    cancel_requested: bool = False
    cancel_delivered: bool = False  # the adapter took the cancel (else renewals ask again)
    started_s: float = 0.0  # monotonic time the run started (0 until then)
    persisting: bool = False
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    ended: anyio.Event = field(default_factory=anyio.Event)


class Runner:
    def __init__(
        self,
        *,
        settings: Settings,
        store: TaskStore,
        live: LiveState,
        registry: Registry,
        replica_id: str,
        updates: UpdateHub,
    ) -> None:
        self.settings = settings
        self.store = store
        self.live = live
        self.registry = registry
        self.replica_id = replica_id
        self.updates = updates
        self.accepting = False
        self._reserved = 0  # run slots held by creates that may start their run at once
        self._runs: dict[str, LocalRun] = {}
        self._tg: TaskGroup | None = None
        self._runs_changed = anyio.Event()
        self._saved_progress: dict[str, tuple[int, int]] = {}
        self._active: Counter[str] = Counter()
        self.metrics = Metrics()  # /metrics, fed by the `self.metrics.` calls below
        self.loop_lag = LoopLagMonitor(on_sample=self.metrics.loop_lag_sampled)
        # Job end -> final write committed, for the runs whose algorithm says when it ended.
        self.notice_latency = RecentMs(NOTICE_WINDOW)
        self.policies = PolicyBook(settings=settings, store=store, names=registry.names())
        self.admission = Admission(policies=self.policies, runs=self)

    # ----- admission -------------------------------------------------------------------

    @property
    def running_count(self) -> int:
        return len(self._runs)

    @property
    def free_slots(self) -> int:
        return self.settings.max_active - len(self._runs) - self._reserved

    def reserve_slot(self) -> bool:
        """Holds a run slot for a create that may start its run at once (the fast path)."""
        if not self.accepting or self._tg is None or self.free_slots <= 0:
            return False
        self._reserved += 1
        return True

    def release_slot(self) -> None:
        self._reserved -= 1

    def start_claimed(self, task: StoredTask) -> bool:
        """Starts the run of a task this replica moved to running (False: not running here)."""
        if task.task_id in self._runs or self._tg is None:
            return False
        run = LocalRun(task.task_id)
        self._runs[run.task_id] = run
        self._tg.start_soon(self._run, run, task, name=f"task {run.task_id}")
        return True

    def local_run(self, task_id: str) -> LocalRun | None:
        return self._runs.get(task_id)

    def local_progress(self, task_id: str) -> int | None:
        run = self._runs.get(task_id)
        return None if run is None or run.adapter is None else run.progress

    # ----- cancel ----------------------------------------------------------------------

    async def cancel_local(self, task_id: str) -> LocalRun | None:
        """Stops a run of this replica through its algorithm; returns it (or None)."""
        run = self._runs.get(task_id)
        if run is None:
            return None
        run.cancel_requested = True
        if not run.persisting:  # else its job is gone: nothing left to stop
            await self._cancel_job(run)
        return run

    async def _cancel_job(self, run: LocalRun) -> None:
        """Asks the run's job, if it has one, to stop; never raises: a cancel that failed
        is asked again at the next lease renewal."""
        if run.adapter is None or run.handle is None:
            return  # not submitted yet: the run checks cancel_requested once it is
        try:
            await run.adapter.cancel(run.handle)
            run.cancel_delivered = True
        except AlgorithmError as exc:
            log.warning("task %s: cancel failed: %s", run.task_id, exc)
        except Exception:
            log.exception("task %s: cancel failed on an unexpected error", run.task_id)

    def fence(self, *, held: frozenset[str], before_s: float) -> None:
        """Stops, without writing anything, every run started before `before_s` whose task
        this replica no longer holds: another replica took it over (or will)."""
        for run in list(self._runs.values()):
            lost = run.task_id not in held and 0 < run.started_s < before_s
            if lost and not run.persisting:
                log.warning("task %s: lease lost; stopping the local run", run.task_id)
                run.scope.cancel()

    # ----- one run ---------------------------------------------------------------------

    async def _run(self, run: LocalRun, task: StoredTask) -> None:
        bind_run(run, self.replica_id)  # its log lines carry task_id, attempt, algorithm
        try:
            with run.scope:
                await self._run_once(run, task)
        except Exception as exc:
            # A bug in one run (an adapter raising what it should not) ends that run only.
            log.exception("task %s: the run failed on an unexpected error", run.task_id)
            if run.attempt and not run.persisting:
                error = f"internal error: {type(exc).__name__}: {exc}"
                await self._persist(run, Outcome(TaskStatus.FAILED, run.progress, error=error))
        finally:
            self._runs.pop(run.task_id, None)
            self._saved_progress.pop(run.task_id, None)
            run.ended.set()
            self._runs_changed.set()
            self._runs_changed = anyio.Event()
            if run.adapter is not None:
                self._active[run.algorithm] -= 1
                self.live.finished(run.task_id, run.algorithm, self._active[run.algorithm])
            self.admission.slot_freed()

    async def _run_once(self, run: LocalRun, task: StoredTask) -> None:
        run.algorithm, run.attempt, run.max_attempts = (
            task.algorithm,
            task.attempt,
            task.max_attempts,
        )
        run.cancel_requested = run.cancel_requested or task.cancel_requested
        try:
            adapter = self.registry.get(task.algorithm)
        except InvalidRequest as exc:
            await self._persist(run, Outcome(TaskStatus.FAILED, 0, error=str(exc), retryable=False))
            return
        run.adapter = adapter
        run.started_s = time.monotonic()
        self.metrics.attempt_started(task)
        self._active[run.algorithm] += 1
        outcome = await self._drive(run, adapter, task)
        await self._persist(run, outcome)

    def _announce_running(self, run: LocalRun) -> None:
        """Tells Redis (heartbeat, active count) and watchers, through their outboxes, that
        the run is under way: once its job was submitted."""
        self.live.started(run.task_id, run.algorithm, self._active[run.algorithm])
        log.info("task %s: attempt %d started", run.task_id, run.attempt)
        self.updates.status_changed(run.task_id, TaskStatus.RUNNING, run.attempt)

    async def _drive(self, run: LocalRun, adapter: Algorithm, task: StoredTask) -> Outcome:
        if run.cancel_requested:
            return Outcome(TaskStatus.CANCELLED, 0, error="cancelled before it started")
        try:
            run.handle = await adapter.submit(task.input, task_id=task.task_id, attempt=run.attempt)
        except InputRejected as exc:
            return Outcome(TaskStatus.FAILED, 0, error=f"input refused: {exc}", retryable=False)
        except AlgorithmError as exc:
            return Outcome(TaskStatus.FAILED, 0, error=f"submit failed: {exc}")
        job_finished = False
        try:
            self._announce_running(run)
            if isinstance(adapter, StreamsProgress):
                # Steps go straight to the run's state; its task wakes for the finish only.
                adapter.follow(run.handle, partial(self._progress_moved, run))
            if run.cancel_requested:
                await self._cancel_job(run)
            with anyio.move_on_after(task.timeout_s):
                outcome = await self._poll_until_finished(run, adapter)
                job_finished = True
                return outcome
            return Outcome(
                TaskStatus.TIMED_OUT,
                run.progress,
                error=f"timed out after {task.timeout_s} s",
                poll_failures=run.poll_failures,
            )
        finally:
            with anyio.CancelScope(shield=True):
                if not job_finished:
                    await self._cancel_job(run)
                handle, run.handle = run.handle, None  # a later cancel finds no job to stop
                try:
                    adapter.release(handle)
                except Exception:
                    log.exception("task %s: releasing the job failed", run.task_id)

    async def _poll_until_finished(self, run: LocalRun, adapter: Algorithm) -> Outcome:
        interval_s = self.policies.policy(run.algorithm).poll_interval_s
        failures_in_a_row = 0
        while True:
            try:
                status = await adapter.poll(run.handle)
            except PollFailed as exc:
                self.metrics.poll_failed(run.algorithm)
                run.poll_failures += 1
                failures_in_a_row += 1
                if failures_in_a_row > self.settings.poll_max_retries:
                    return Outcome(
                        TaskStatus.FAILED,
                        run.progress,
                        error=f"gave up after {failures_in_a_row} failed polls in a row "
                        f"(limit {self.settings.poll_max_retries} retries): {exc}",
                        poll_failures=run.poll_failures,
                    )
                delay_s = retry_delay_s(failures_in_a_row, interval_s)
            else:
                failures_in_a_row = 0
                if status.state.finished:
                    run.progress = status.progress
                    return outcome_of(status, poll_failures=run.poll_failures)
                self._progress_moved(run, status.progress)
                # Jittered, so that runs started together do not all poll at the same moment.
                delay_s = interval_s * random.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
            await adapter.wait(run.handle, delay_s)

    def _progress_moved(self, run: LocalRun, progress: int) -> None:
        if progress != run.progress and not run.persisting:
            run.progress = progress
            self.updates.progress_changed(run.task_id, run.attempt, progress)

    async def _persist(self, run: LocalRun, outcome: Outcome) -> None:
        """Writes the outcome (or the retry), retrying while the database is away (bounded)."""
        run.persisting = True
        policy = self.policies.policy(run.algorithm)
        retry_at = None if run.cancel_requested else next_attempt_at(policy, outcome, run)
        backoff = Backoff(FINAL_WRITE_FIRST_RETRY_S, FINAL_WRITE_MAX_RETRY_S)
        with anyio.move_on_after(FINAL_WRITE_RETRY_S) as scope:
            while True:
                try:
                    won = await self.store.finish_run(
                        task_id=run.task_id,
                        owner=self.replica_id,
                        attempt=run.attempt,
                        outcome=outcome,
                        retry_at=retry_at,
                    )
                    if won and outcome.job_finished_at is not None:
                        self._noticed(outcome.job_finished_at)
                    break
                except Exception as exc:
                    log.warning("task %s: final write failed, retrying: %s", run.task_id, exc)
                    await anyio.sleep(backoff.next_delay_s())
        if scope.cancelled_caught:
            log.error("task %s: outcome %s lost: database away", run.task_id, outcome.status)
        elif won and retry_at is not None:
            self.metrics.attempt_ended(run.algorithm, outcome.status, started_s=run.started_s)
            self.admission.retry_scheduled(run.task_id, run.attempt, outcome, retry_at)
        elif won:
            self.metrics.run_finished(run.algorithm, outcome.status, started_s=run.started_s)
            log.info("task %s: %s", run.task_id, outcome.status.value)
            self.updates.status_changed(run.task_id, outcome.status, run.attempt, outcome.progress)
        else:
            log.warning("task %s: no longer ours; outcome %s dropped", run.task_id, outcome)

    def _noticed(self, job_finished_at: float) -> None:
        noticed_ms = (time.time() - job_finished_at) * 1000
        self.notice_latency.record(noticed_ms)
        self.metrics.run_noticed(noticed_ms)

    # ----- the replica's loops ---------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Owns every run of this replica; started by the composition root with `tg.start`.
        The lease comes first: a task this replica owns is never without one."""
        lease_until = lease_deadline(self.settings.lease_duration_s)
        await self.store.join(replica_id=self.replica_id, lease_until=lease_until)
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self.accepting = True
            task_status.started()
            await anyio.sleep_forever()

    async def drain(self, grace_s: float) -> None:
        """`stop_runs`, then `hand_back`."""
        await self.stop_runs(grace_s)
        await self.hand_back()

    async def stop_runs(self, grace_s: float) -> None:
        """Stops admitting, lets runs finish for `grace_s` and stops the rest."""
        self.accepting = False
        with anyio.move_on_after(grace_s):
            while self._runs:
                await self._runs_changed.wait()
        for run in list(self._runs.values()):
            run.scope.cancel()
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT_S):
            while self._runs:
                await self._runs_changed.wait()

    async def hand_back(self) -> None:
        """Hands every unfinished task of this replica back, so that any replica takes it
        over at once, drops this replica's live counts, and ends the runner."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT_S):
            try:
                released = await self.store.release_all(owner=self.replica_id)
                log.info("released %d unfinished tasks for other replicas", released)
                if released:
                    await self.admission.publish()
            except Exception as exc:
                log.warning("could not release the unfinished tasks: %s", exc)
            # What the ended runs queued goes out before this replica's counts are dropped.
            await self.live.run_events.flush()
            await self.updates.flush()
            await self.live.forget_replica(self.replica_id, self.algorithm_names())
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    def policy_of(self, algorithm: str) -> Policy:
        return self.policies.policy(algorithm)

    async def work_queued(self) -> None:
        await self.admission.publish()

    def is_local(self, task_id: str) -> bool:
        return task_id in self._runs

    def cancel_undelivered(self, task_id: str) -> bool:
        run = self._runs.get(task_id)
        return run is not None and not run.cancel_delivered

    def algorithm_names(self) -> list[str]:
        return self.registry.names()

    def active_counts(self) -> dict[str, int]:
        """This replica's running tasks per registered algorithm (zeros included)."""
        return {name: self._active[name] for name in self.registry.names()}

    def running_attempts(self) -> dict[str, tuple[int, int]]:
        """task_id -> (attempt, progress) of the runs under way."""
        return {
            task_id: (run.attempt, run.progress)
            for task_id, run in self._runs.items()
            if run.adapter
        }

    def running_progress(self) -> dict[str, int]:
        return {task_id: run.progress for task_id, run in self._runs.items() if run.adapter}

    def progress_to_save(self) -> list[tuple[str, int, int]]:
        """(task_id, progress, poll_failures) of runs changed since the last save."""
        changed = []
        for task_id, run in self._runs.items():
            if run.adapter is None:
                continue
            current = (run.progress, run.poll_failures)
            if self._saved_progress.get(task_id) != current:
                self._saved_progress[task_id] = current
                changed.append((task_id, *current))
        return changed
