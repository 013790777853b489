"""Bulk actions: cancel or re-run every task a filter matches, a page at a time, through
the same paths as the single cancel and re-run (so a running task's cancel reaches its run
on whichever replica holds it). Safe to repeat: a second call finds nothing left to change."""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from app.domain.models import BulkAnswer, BulkFilter, TaskStatus
from app.service.tasks import TaskService
from app.store.bulk import PAGE_SIZE, BulkAction, Selection

Changes = TypeVar("Changes")


async def _pages(
    fetch: Callable[[str], Awaitable[tuple[list[str], Changes]]],
) -> AsyncIterator[tuple[list[str], Changes]]:
    """Each page (the ids matched, the changes made) until one comes back short."""
    after = ""
    while True:
        ids, changes = await fetch(after)
        yield ids, changes
        if len(ids) < PAGE_SIZE:
            return
        after = ids[-1]


@dataclass
class BulkActions:
    service: TaskService

    def _selection(
        self, where: BulkFilter, visible_to: str | None, api_key_id: str | None
    ) -> Selection:
        return Selection(where, visible_to, self.service.runner.replica_id, api_key_id)

    async def count(
        self, where: BulkFilter, action: BulkAction, *, visible_to: str | None = None
    ) -> int:
        """How many tasks `action` would take now: what the dashboard shows before it acts."""
        selection = self._selection(where, visible_to, None)
        return await self.service.store.bulk_count(selection=selection, action=action)

    async def cancel(
        self, where: BulkFilter, *, visible_to: str | None = None, api_key_id: str | None = None
    ) -> BulkAnswer:
        """Cancels the unfinished tasks matching `where` (only `visible_to`'s, a client key,
        when given) whose cancel nobody asked yet; `api_key_id` goes to the transition log."""
        service, runner = self.service, self.service.runner
        selection = self._selection(where, visible_to, api_key_id)
        answer = BulkAnswer(matched=0, changed=0)
        pages = _pages(lambda after: service.store.cancel_page(selection=selection, after=after))
        async for ids, answers in pages:
            elsewhere = []
            for found in answers:
                if found is None or found.before.finished:
                    continue
                answer.changed += 1
                task = found.task
                if found.before is TaskStatus.PENDING:
                    service.updates.status_changed(task.task_id, TaskStatus.CANCELLED, task.attempt)
                    runner.metrics.task_finished(task.algorithm, TaskStatus.CANCELLED)
                elif await runner.cancel_local(task.task_id) is None:
                    elsewhere.append(task.task_id)
            await service.live.publish_cancels(elsewhere)
            answer.matched += len(ids)
        return answer

    async def retry(
        self, where: BulkFilter, *, visible_to: str | None = None, api_key_id: str | None = None
    ) -> BulkAnswer:
        """Runs the failed, cancelled and timed-out tasks matching `where` again."""
        service = self.service
        selection = self._selection(where, visible_to, api_key_id)
        answer = BulkAnswer(matched=0, changed=0)
        pages = _pages(lambda after: service.store.rerun_page(selection=selection, after=after))
        async for ids, moved in pages:
            await service.requeued(moved)
            answer.matched += len(ids)
            answer.changed += len(moved)
        return answer
