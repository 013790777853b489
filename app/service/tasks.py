"""The task service: what the API does, over the store, the runner and the live state."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from sqlalchemy.exc import SQLAlchemyError

from app.algorithms.registry import Registry
from app.core.config import Settings
from app.domain.errors import Conflict, InvalidRequest, NotFound, StoreUnavailable
from app.domain.models import (
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
from app.store import TaskStore

CANCEL_WAIT_S = 2.0


@dataclass
class TaskService:
    settings: Settings
    store: TaskStore
    live: LiveState
    runner: Runner
    registry: Registry
    updates: UpdateHub

    async def create(self, request: TaskCreate) -> TaskPublic:
        """Stores the task (committed before this returns) and hands it to the runner."""
        self.registry.validate(request.algorithm, request.input)
        timeout_s = request.timeout_s or self.settings.task_timeout_s
        if timeout_s > self.settings.max_timeout_s:
            raise InvalidRequest(f"timeout_s must be at most {self.settings.max_timeout_s}")
        self.runner.check_capacity()
        task = StoredTask(
            task_id=new_task_id(),
            algorithm=request.algorithm,
            status=TaskStatus.PENDING,
            input=request.input,
            timeout_s=timeout_s,
            created_at=utcnow(),
            owner=self.runner.replica_id,
        )
        try:
            await self.store.insert_task(task=task)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreUnavailable(f"the database could not store the task: {exc}") from exc
        self.runner.metrics.task_created(task.algorithm)  # metrics
        self.runner.enqueue(task.task_id)
        return TaskPublic.model_validate(task, from_attributes=True)

    async def _load(self, task_id: str) -> StoredTask:
        task = await self.store.get_task(task_id=task_id)
        if task is None:
            raise NotFound(f"no task {task_id}")
        return task

    async def public(self, tasks: Sequence[StoredTask]) -> list[TaskPublic]:
        """Tasks as clients see them: live progress and heartbeat while they run (read from
        Redis in one round trip for all of them)."""
        running = [task.task_id for task in tasks if task.status is TaskStatus.RUNNING]
        live = await self.live.progress_and_heartbeats(running)
        shown = []
        for task in tasks:
            public = TaskPublic.model_validate(task, from_attributes=True)
            if task.task_id in live:
                progress, public.heartbeat_at = live[task.task_id]
                local = self.runner.local_progress(task.task_id)
                live_progress = local if local is not None else progress
                if live_progress is not None:
                    public.progress = max(task.progress, live_progress)
            shown.append(public)
        return shown

    async def get(self, task_id: str) -> TaskPublic:
        (task,) = await self.public([await self._load(task_id)])
        return task

    async def list_tasks(
        self,
        *,
        status: TaskStatus | None,
        algorithm: str | None,
        limit: int,
        cursor: str | None,
    ) -> TaskPage:
        page, next_cursor = await self.store.list_tasks(
            status=status, algorithm=algorithm, limit=limit, cursor=cursor
        )
        return TaskPage(items=await self.public(page), next_cursor=next_cursor)

    async def cancel(self, task_id: str) -> TaskPublic:
        """Cancels a pending task at once; stops a run of this replica and waits briefly for
        it; asks the owning replica to stop any other run (see TaskWatcher to wait for it)."""
        task = await self._load(task_id)
        if task.status.finished:
            raise Conflict(f"task {task_id} already finished: {task.status.value}")
        if task.status is TaskStatus.PENDING and await self.store.cancel_pending(
            task_id=task_id, replica=self.runner.replica_id
        ):
            self.updates.status_changed(task_id, TaskStatus.CANCELLED, task.attempt)
            self.runner.metrics.task_finished(task.algorithm, TaskStatus.CANCELLED)  # metrics
            return await self.get(task_id)
        if not await self.store.request_cancel(task_id=task_id):
            task = await self._load(task_id)
            raise Conflict(f"task {task_id} already finished: {task.status.value}")
        run = await self.runner.cancel_local(task_id)
        if run is None:
            await self.live.publish_cancel(task_id)
        else:
            with anyio.move_on_after(CANCEL_WAIT_S):
                await run.ended.wait()
        return await self.get(task_id)

    async def algorithms(self) -> list[dict[str, Any]]:
        names = self.registry.names()
        active = await self.live.active_counts(names)
        return [
            {"name": name, "active": active.get(name, 0), "max_active": self.settings.max_active}
            for name in names
        ]

    async def stats(self) -> dict[str, Any]:
        active = await self.live.active_counts(self.registry.names())
        totals = await self.store.count_by_status()
        return {
            "active": active,
            "totals": {status.value: count for status, count in totals.items()},
            "replica": {
                "id": self.runner.replica_id,
                "running": self.runner.running_count,
                "waiting": self.runner.waiting_count,
            },
            "event_loop_lag_ms": self.runner.loop_lag.summary(),
        }
