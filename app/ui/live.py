"""The dashboard's event streams (htmx's SSE extension swaps what they send): a task's live
part, and the progress cells of a page of running tasks. They listen to the same update hub
as the API's /events, and send at most one frame per DEBOUNCE_S however fast tasks move."""

from contextlib import AsyncExitStack
from typing import Annotated

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from fastapi import APIRouter, Query, Request

from app.domain.models import TaskPublic, is_task_id
from app.live.updates import Subscription
from app.replica import ReplicaContext
from app.ui.deps import ContextDep, TaskIdDep
from app.ui.event_stream import Emit, EventStream, Producer
from app.ui.pages import dashboard_of
from app.ui.security import can_act
from app.ui.templating import templates

router = APIRouter(prefix="/ui", include_in_schema=False)
DEBOUNCE_S = 0.25
MAX_WATCHED = 100


def _frame(event: str, html: str) -> str:
    data = "\n".join(f"data: {line}" for line in html.splitlines() or [""])
    return f"event: {event}\n{data}\n\n"


def _render(request: Request, template: str, **context: object) -> str:
    dashboard = dashboard_of(request)
    page = templates.get_template(template)
    return page.render(
        request=request,
        can_act=can_act(request),
        stale_after_s=dashboard.stale_after_s,
        **context,
    )


async def _debounced(receive: "MemoryObjectReceiveStream[str]", keepalive_s: float) -> set[str]:
    """The task ids that moved, gathered over DEBOUNCE_S after the first; empty when nothing
    moved for `keepalive_s` (time for a keep-alive comment)."""
    moved: set[str] = set()
    with anyio.move_on_after(keepalive_s):
        moved.add(await receive.receive())
    if moved:
        await anyio.sleep(DEBOUNCE_S)
        while True:
            try:
                moved.add(receive.receive_nowait())
            except anyio.WouldBlock:
                break
    return moved


def _producer(
    request: Request, context: ReplicaContext, task_ids: list[str], *, single: bool
) -> Producer:
    service = context.service

    async def frames_for(moved: set[str]) -> list[tuple[str, TaskPublic]]:
        stored = [await service.store.get_task(task_id=task_id) for task_id in sorted(moved)]
        shown = await service.public([task for task in stored if task is not None])
        return [("task" if single else f"p-{task.task_id}", task) for task in shown]

    async def produce(emit: Emit) -> None:
        send, receive = anyio.create_memory_object_stream[str](MAX_WATCHED * 4)
        async with AsyncExitStack() as stack, anyio.create_task_group() as tg:
            for task_id in task_ids:
                subscription = await stack.enter_async_context(context.updates.subscribe(task_id))
                tg.start_soon(_pump, subscription, send)
            unfinished = set(task_ids)
            moved = set(task_ids)  # once at first: a change before the subscription shows
            while unfinished:
                for event, task in await frames_for(moved & unfinished):
                    template = "_task_live.html" if single else "_progress_cell.html"
                    await emit(_frame(event, _render(request, template, task=task)))
                    if task.status.finished:
                        unfinished.discard(task.task_id)
                if not unfinished:
                    break
                moved = await _debounced(receive, context.settings.sse_keepalive_s)
                if not moved:
                    await emit(": keep-alive\n\n")
            tg.cancel_scope.cancel()
        await emit(_frame("done", ""))

    return produce


async def _pump(subscription: Subscription, send: "MemoryObjectSendStream[str]") -> None:
    while True:
        update = await subscription.next()
        await send.send(update.task_id)


@router.get("/tasks/{task_id}/live")
async def task_live(request: Request, task_id: TaskIdDep, context: ContextDep) -> EventStream:
    """The task's status, progress and actions, sent again each time it changes."""
    await context.service.get(task_id)  # 404 for an unknown task
    return EventStream(_producer(request, context, [task_id], single=True))


@router.get("/live/progress")
async def progress_live(
    request: Request, context: ContextDep, ids: Annotated[str, Query(max_length=4000)] = ""
) -> EventStream:
    """The progress cells of the running tasks a page shows (`ids`, comma-separated)."""
    task_ids = [tid for tid in dict.fromkeys(ids.split(",")) if is_task_id(tid)][:MAX_WATCHED]
    return EventStream(_producer(request, context, task_ids, single=False))
