"""The task service: what the API does, over the store, the runner and the live state."""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from sqlalchemy.exc import SQLAlchemyError

from app.algorithms.registry import Registry
from app.core.config import Settings
from app.domain.errors import (
    Conflict,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    StoreUnavailable,
)
from app.domain.models import (
    RERUNNABLE,
    AttemptPublic,
    StoredTask,
    TaskCreate,
    TaskPage,
    TaskPublic,
    TaskStatus,
    new_task_id,
    utcnow,
)
from app.live.state import LiveState
from app.live.updates import UpdateHub
from app.runner.runner import Runner
from app.store import Created, IdempotencyClaim, TaskStore

CANCEL_WAIT_S = 2.0
RETRY_UNFINISHED_S = 5  # a key at its limit of unfinished tasks: when to try again


@dataclass(frozen=True, slots=True)
class CreateAnswer:
    task: TaskPublic
    replayed: bool = False  # an idempotency key's first task, not a new one


def body_hash(request: TaskCreate) -> str:
    """What an idempotency key answers to: the create's fields, hashed (the same fields in
    another order or spacing are the same body)."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class TaskService:
    settings: Settings
    store: TaskStore
    live: LiveState
    runner: Runner
    registry: Registry
    updates: UpdateHub

    async def create(
        self,
        request: TaskCreate,
        *,
        api_key_id: str | None = None,
        max_unfinished: int | None = None,
        idempotency_key: str | None = None,
    ) -> CreateAnswer:
        """Stores the task (committed before this returns); its run starts at once when
        this replica has a free slot and its algorithm room, else it waits in the queue.
        `api_key_id` is the key that creates (and owns) it; LimitExceeded when that key
        already holds `max_unfinished` unfinished tasks. With `idempotency_key`, a key
        of this API key's already used within TASKBEAT_IDEMPOTENCY_TTL_S answers its first
        task (`replayed`), or InvalidRequest if that create had another body."""
        self.registry.validate(request.algorithm, request.input)
        policy = self.runner.policies.policy(request.algorithm)
        timeout_s = request.timeout_s or policy.timeout_s
        if timeout_s > policy.max_timeout_s:
            raise InvalidRequest(f"timeout_s must be at most {policy.max_timeout_s}")
        self.runner.admission.check_capacity(request.algorithm)
        now = utcnow()
        run_at = request.start_at(now)
        delayed = run_at is not None and run_at > now
        task = StoredTask(
            task_id=new_task_id(),
            algorithm=request.algorithm,
            status=TaskStatus.PENDING,
            input=request.input,
            timeout_s=timeout_s,
            max_attempts=policy.max_attempts,
            priority=policy.priority if request.priority is None else request.priority,
            run_at=run_at,
            next_attempt_at=run_at if delayed else None,  # a delayed task waits until then
            created_at=now,
            api_key_id=api_key_id,
        )
        claim = None
        if idempotency_key is not None:
            scope = api_key_id or ""
            ttl_s = self.settings.idempotency_ttl_s
            claim = IdempotencyClaim(scope, idempotency_key, body_hash(request), ttl_s)
        # a delayed task never takes the fast path: the look that follows its time starts it
        reserved = not delayed and self.runner.reserve_slot()
        start_for = self.runner.replica_id if reserved else None
        configured = self.runner.policies.configured.get(request.algorithm)
        try:
            created = await self.store.insert_task(
                task=task,
                start_for=start_for,
                policy=configured,
                idempotency=claim,
                max_unfinished=max_unfinished,
            )
        except (SQLAlchemyError, OSError) as exc:
            if reserved:
                self.runner.release_slot()
            raise StoreUnavailable(f"the database could not store the task: {exc}") from exc
        if reserved and (created.replayed or created.over_limit is not None):
            self.runner.release_slot()
        if created.over_limit is not None:
            raise LimitExceeded(
                f"the key holds {created.over_limit} unfinished tasks, its limit: "
                "wait for some to finish",
                retry_after_s=RETRY_UNFINISHED_S,
            )
        if created.replayed:
            return CreateAnswer(await self._replayed(created), replayed=True)
        assert created.task is not None  # a create that was no replay stored its task
        self.runner.metrics.task_created(created.task.algorithm)
        self.runner.admission.created(created.task, reserved=reserved)
        return CreateAnswer(TaskPublic.model_validate(created.task, from_attributes=True))

    async def _replayed(self, created: Created) -> TaskPublic:
        """The first task of an idempotency key, as it is now."""
        if created.task is None:
            raise InvalidRequest("Idempotency-Key: its task was deleted; use another key")
        if not created.same_body:
            raise InvalidRequest("Idempotency-Key: already used with another body; use another key")
        (task,) = await self.public([created.task])
        return task

    async def attempts(self, task_id: str, *, visible_to: str | None = None) -> list[AttemptPublic]:
        """Every run of the task: the ended ones, then the one under way."""
        task = await self._load(task_id, visible_to)
        ended = await self.store.attempts(task_id=task_id)
        if task.status is TaskStatus.RUNNING and all(a.attempt != task.attempt for a in ended):
            current = AttemptPublic(
                attempt=task.attempt,
                status=TaskStatus.RUNNING.value,
                error=None,
                replica=task.owner,
                started_at=task.started_at,
                finished_at=None,
            )
            ended.append(current)
        return ended

    async def _load(self, task_id: str, visible_to: str | None = None) -> StoredTask:
        """The task; NotFound when there is none, or when `visible_to` (a client key) names
        a key that is not the task's: another key's task is not there for it."""
        task = await self.store.get_task(task_id=task_id)
        if task is None or (visible_to is not None and task.api_key_id != visible_to):
            raise NotFound(f"no task {task_id}")
        return task

    async def ensure_visible(self, task_id: str, visible_to: str | None) -> None:
        """NotFound unless the task is there for `visible_to` (None: for everyone)."""
        if visible_to is not None:
            await self._load(task_id, visible_to)

    async def public(self, tasks: Sequence[StoredTask]) -> list[TaskPublic]:
        """Tasks as clients see them: live progress and heartbeat while they run (read from
        Redis in one round trip for all of them)."""
        running = [task.task_id for task in tasks if task.status is TaskStatus.RUNNING]
        live = await self.live.progress_and_heartbeats(running)
        shown = []
        now = utcnow()
        for task in tasks:
            public = TaskPublic.model_validate(task, from_attributes=True)
            if task.status is TaskStatus.PENDING:
                public.paused = self.runner.policies.policy(task.algorithm).paused_at(now)
            if task.task_id in live:
                progress, public.heartbeat_at = live[task.task_id]
                local = self.runner.local_progress(task.task_id)
                live_progress = local if local is not None else progress
                if live_progress is not None:
                    public.progress = max(task.progress, live_progress)
            shown.append(public)
        return shown

    async def get(self, task_id: str, *, visible_to: str | None = None) -> TaskPublic:
        (task,) = await self.public([await self._load(task_id, visible_to)])
        return task

    async def list_tasks(
        self,
        *,
        status: TaskStatus | None,
        algorithm: str | None,
        limit: int,
        cursor: str | None,
        visible_to: str | None = None,
        schedule: str | None = None,
    ) -> TaskPage:
        page, next_cursor = await self.store.list_tasks(
            status=status,
            algorithm=algorithm,
            limit=limit,
            cursor=cursor,
            api_key_id=visible_to,
            schedule=schedule,
        )
        return TaskPage(items=await self.public(page), next_cursor=next_cursor)

    async def cancel(
        self, task_id: str, *, visible_to: str | None = None, api_key_id: str | None = None
    ) -> TaskPublic:
        """Cancels a pending task at once; stops a run of this replica and waits briefly for
        it; asks the owning replica to stop any other run (see TaskWatcher to wait for it).
        `visible_to` (a client key) sees only its own tasks; `api_key_id`, the key asking,
        goes to the transition log."""
        if visible_to is not None:
            await self.ensure_visible(task_id, visible_to)
        if api_key_id is None:  # the fast path writes nothing but the run's own outcome
            stopped = await self._stop_here(task_id)
            if stopped is not None:
                return stopped
        answer = await self.store.cancel(
            task_id=task_id, replica=self.runner.replica_id, api_key_id=api_key_id
        )
        if answer is None:
            raise NotFound(f"no task {task_id}")
        if answer.before.finished:
            raise Conflict(f"task {task_id} already finished: {answer.before.value}")
        if answer.before is TaskStatus.PENDING:
            self.updates.status_changed(task_id, TaskStatus.CANCELLED, answer.task.attempt)
            self.runner.metrics.task_finished(answer.task.algorithm, TaskStatus.CANCELLED)
            (task,) = await self.public([answer.task])
            return task
        run = await self.runner.cancel_local(task_id)
        if run is None:
            await self.live.publish_cancel(task_id)
        else:
            with anyio.move_on_after(CANCEL_WAIT_S):
                await run.ended.wait()
        return await self.get(task_id)

    async def delete(self, task_id: str, *, visible_to: str | None = None) -> None:
        """Deletes a finished task with its events and attempts; Conflict while unfinished."""
        task = await self._load(task_id, visible_to)
        if not task.status.finished:
            raise Conflict(f"task {task_id} is {task.status.value}: only a finished one is deleted")
        if not await self.store.delete_finished(task_id=task_id):
            raise Conflict(f"task {task_id} was run again meanwhile: it is unfinished")

    async def retry(
        self, task_id: str, *, visible_to: str | None = None, api_key_id: str | None = None
    ) -> TaskPublic:
        """Runs a failed, cancelled or timed-out task again as its next attempt (Conflict for
        any other); the earlier attempts stay. `api_key_id`, the key asking, goes to the
        transition log."""
        task = await self._load(task_id, visible_to)
        moved = None
        if task.status in RERUNNABLE:
            moved = await self.store.rerun(
                task_id=task_id, replica=self.runner.replica_id, api_key_id=api_key_id
            )
        if moved is None:
            now = await self._load(task_id, visible_to)
            raise Conflict(
                f"task {task_id} is {now.status.value}: only a failed, cancelled or "
                "timed-out task runs again"
            )
        await self.requeued([moved])
        (public,) = await self.public([moved])
        return public

    async def requeued(self, tasks: Sequence[StoredTask]) -> None:
        """Tells watchers and every replica's admission (at once) that these wait again."""
        for task in tasks:
            self.updates.status_changed(task.task_id, TaskStatus.PENDING, task.attempt)
            self.runner.admission.queued(task.algorithm)
        if tasks:
            await self.runner.admission.publish()

    async def _stop_here(self, task_id: str) -> TaskPublic | None:
        """A run under way on this replica: its job stops at once and the run's own final
        write (cancelled) is the cancel's only write. None when that did not end the task:
        the caller then records the cancel for whoever holds the task."""
        run = self.runner.local_run(task_id)
        if run is None or run.handle is None or run.persisting:
            return None
        await self.runner.cancel_local(task_id)
        with anyio.move_on_after(CANCEL_WAIT_S):
            await run.ended.wait()
        if not run.ended.is_set():
            return None
        task = await self.get(task_id)
        return task if task.status.finished else None

    async def stats(self, *, visible_to: str | None = None) -> dict[str, Any]:
        active = await self.live.active_counts(self.registry.names())
        totals = await self.store.count_by_status(api_key_id=visible_to)
        return {
            "active": active,
            "totals": {status.value: count for status, count in totals.items()},
            "replica": {
                "id": self.runner.replica_id,
                "running": self.runner.running_count,
                "waiting": self.runner.admission.waiting(),
            },
            "event_loop_lag_ms": self.runner.loop_lag.summary(),
            "notice_latency_ms": self.runner.notice_latency.summary(),
        }
