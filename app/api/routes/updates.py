"""/v1/tasks/{id}/wait, /events and /callback: clients that wait and engines that call back."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.deps import (
    CallbacksDep,
    ContextDep,
    LastEventIdDep,
    PrincipalDep,
    ServiceDep,
    TaskIdDep,
    WatchDep,
)
from app.api.errors import WHEN, error_responses
from app.api.json_body import StrictJSONRoute
from app.domain.models import TaskPublic
from app.service.callbacks import SIGNATURE_HEADER
from app.service.waits import snapshot_id

router = APIRouter(prefix="/v1/tasks", tags=["updates"], route_class=StrictJSONRoute)
SIGNATURE_DOC = (
    "`t=<unix seconds>,v2=<hex>`: HMAC-SHA256 with the callback secret over"
    ' `"<t>.<task_id>.<raw body>"` (see the README)'
)


@router.get("/{task_id}/wait", response_model=TaskPublic, responses=error_responses(404, 422, 503))
async def wait_for_task(
    task_id: TaskIdDep,
    watch: WatchDep,
    service: ServiceDep,
    who: PrincipalDep,
    timeout_s: Annotated[float, Query(gt=0, le=300)] = 30,
) -> TaskPublic:
    """Answers as soon as the task is finished, else with the task as it is at `timeout_s`."""
    await service.ensure_visible(task_id, who.task_scope)
    return await watch.wait(task_id, timeout_s)


@router.get(
    "/{task_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "`status` and `progress` events until the final status",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        204: {"description": WHEN[204]},
        **error_responses(404, 422, 503),
    },
)
async def task_events(
    task_id: TaskIdDep,
    service: ServiceDep,
    watch: WatchDep,
    context: ContextDep,
    seen: LastEventIdDep,
    who: PrincipalDep,
) -> Response:
    """Server-Sent Events: the task now (`status`), then `progress` and `status` events until
    it finishes. `Last-Event-ID` resumes; 204 when the client has seen the final event."""
    task = await service.get(task_id, visible_to=who.task_scope)
    if task.status.finished and snapshot_id(task) <= seen:
        return Response(status_code=204)
    events = watch.events(task_id, last_event_id=seen)
    # sse-starlette encodes the events, sends keep-alive comments and sets the no-buffering
    # and no-cache headers; a client that goes away ends the stream.
    return EventSourceResponse(
        events,
        ping=context.settings.sse_keepalive_s,
        ping_message_factory=_keep_alive,
        sep="\n",
    )


def _keep_alive() -> ServerSentEvent:
    return ServerSentEvent(comment="keep-alive", sep="\n")


@router.post(
    "/{task_id}/callback",
    response_model=TaskPublic,
    responses=error_responses(401, 404, 409, 422, 503),
    openapi_extra={
        "parameters": [
            {
                "name": SIGNATURE_HEADER,
                "in": "header",
                "required": True,
                "description": SIGNATURE_DOC,
                "schema": {"type": "string"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/CallbackReport"}}
            },
        },
    },
)
async def task_callback(
    task_id: TaskIdDep, request: Request, callbacks: CallbacksDep
) -> TaskPublic:
    """An external engine reports on a task; signed with `X-Taskbeat-Signature`. The raw
    body is read here (the signature covers its exact bytes)."""
    body = await request.body()
    return await callbacks.receive(task_id, request.headers.get(SIGNATURE_HEADER), body)
