"""Waiting on a task: long-poll (`/wait`) and Server-Sent Events (`/events`).

Both subscribe to the replica's update hub before reading the task, then sleep until a
message about that task arrives (from any replica): no polling, whatever the number of
waiters. A status message makes them re-read the row; progress messages stream as they are.
"""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio

from app.domain.models import TaskPublic, TaskStatus
from app.live.updates import UpdateHub, UpdateKind, event_id
from app.service.tasks import TaskService


def snapshot_id(task: TaskPublic) -> int:
    return event_id(task.status, task.attempt, task.progress)


@dataclass
class TaskWatcher:
    service: TaskService
    updates: UpdateHub

    async def wait(self, task_id: str, timeout_s: float) -> TaskPublic:
        """The task as soon as it is finished, or as it is after `timeout_s`."""
        async with self.updates.subscribe(task_id) as subscription:
            task = await self.service.get(task_id)
            if task.status.finished:
                return task
            with anyio.move_on_after(timeout_s):
                while True:
                    update = await subscription.next()
                    if update.kind is UpdateKind.PROGRESS:
                        continue
                    task = await self.service.get(task_id)
                    if task.status.finished:
                        return task
        return await self.service.get(task_id)

    async def events(self, task_id: str, *, last_event_id: int) -> AsyncIterator[dict[str, str]]:
        """Server-sent events (event, id, data): the current task first (a `status` event),
        then `progress` and `status` events as they happen, until the final status. Event
        ids grow with every change, so a client resuming with `Last-Event-ID` gets only what
        it has not seen."""
        async with self.updates.subscribe(task_id) as subscription:
            task = await self.service.get(task_id)
            last_sent = last_event_id
            while True:
                current = snapshot_id(task)
                if current > last_sent:
                    last_sent = current
                    yield {"event": "status", "id": str(current), "data": task.model_dump_json()}
                if task.status.finished:
                    return
                update = await subscription.next()
                # Progress of a run this stream has not seen start: re-read the task below.
                if update.kind is UpdateKind.PROGRESS and task.status is TaskStatus.RUNNING:
                    current = event_id(TaskStatus.RUNNING, update.attempt, update.progress)
                    if current > last_sent:
                        last_sent = current
                        payload = {
                            "task_id": task_id,
                            "status": TaskStatus.RUNNING.value,
                            "attempt": update.attempt,
                            "progress": update.progress,
                        }
                        data = json.dumps(payload)
                        yield {"event": "progress", "id": str(current), "data": data}
                    continue
                task = await self.service.get(task_id)
