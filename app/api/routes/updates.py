"""/v1/tasks/{id}/wait, /events and /callback: clients that wait and engines that call back."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from app.api.deps import CallbacksDep, ContextDep, ServiceDep, WatchDep
from app.callbacks import SIGNATURE_HEADER
from app.models import TaskPublic
from app.watch import snapshot_id

router = APIRouter(prefix="/v1/tasks", tags=["updates"])


@router.get("/{task_id}/wait", response_model=TaskPublic)
async def wait_for_task(
    task_id: str,
    watch: WatchDep,
    timeout_s: Annotated[float, Query(gt=0, le=300)] = 30,
) -> TaskPublic:
    """Answers as soon as the task is finished, else with the task as it is at `timeout_s`."""
    return await watch.wait(task_id, timeout_s)


@router.get(
    "/{task_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, 204: {"description": "seen all"}},
)
async def task_events(
    task_id: str,
    service: ServiceDep,
    watch: WatchDep,
    context: ContextDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """Server-Sent Events: the task now (`status`), then `progress` and `status` events until
    it finishes. `Last-Event-ID` resumes; 204 when the client has seen the final event."""
    task = await service.get(task_id)
    seen = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    if task.status.finished and snapshot_id(task) <= seen:
        return Response(status_code=204)
    frames = watch.events(task_id, last_event_id=seen, keepalive_s=context.settings.sse_keepalive_s)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(frames, media_type="text/event-stream", headers=headers)


@router.post("/{task_id}/callback", response_model=TaskPublic)
async def task_callback(task_id: str, request: Request, callbacks: CallbacksDep) -> TaskPublic:
    """An external engine reports on a task; signed with `X-Taskbeat-Signature`."""
    body = await request.body()
    return await callbacks.receive(task_id, request.headers.get(SIGNATURE_HEADER), body)
