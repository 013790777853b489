"""/v1/tasks: create, read, list, cancel, re-run, delete."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from app.api.deps import (
    IdempotencyKeyDep,
    PrincipalDep,
    ServiceDep,
    TaskIdDep,
    WatchDep,
)
from app.api.errors import error_responses
from app.api.json_body import StrictJSONRoute
from app.domain.keys import Principal
from app.domain.models import TaskCreate, TaskPage, TaskPublic, TaskStatus
from app.service.tasks import CANCEL_WAIT_S, CreateAnswer, TaskService
from app.service.waits import TaskWatcher

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], route_class=StrictJSONRoute)
# printable text only: a NUL or control character is no algorithm name (and PostgreSQL
# cannot compare one)
NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskPublic,
    responses={
        200: {
            "model": TaskPublic,
            "description": "a replay: the first task of this Idempotency-Key, as it is now",
            "headers": {
                "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}},
                "Location": {"schema": {"type": "string"}},
            },
        },
        202: {"headers": {"Location": {"schema": {"type": "string"}}}},
        **error_responses(422, 429, 503),
    },
)
async def create_task(
    body: TaskCreate,
    service: ServiceDep,
    response: Response,
    who: PrincipalDep,
    idempotency_key: IdempotencyKeyDep,
) -> TaskPublic:
    """Creates a task (202); with an Idempotency-Key already used for the same body, answers
    that first task instead (200, Idempotent-Replayed: true)."""
    answer = await service.create(
        body,
        api_key_id=who.key_id,
        max_unfinished=who.max_unfinished,
        idempotency_key=idempotency_key,
    )
    response.status_code, headers = create_answer_head(answer)
    response.headers.update(headers)
    return answer.task


def create_answer_head(answer: CreateAnswer) -> tuple[int, dict[str, str]]:
    """A create's status and headers (here, and in app.api.hot_routes)."""
    headers = {"Location": f"/v1/tasks/{answer.task.task_id}"}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
        return status.HTTP_200_OK, headers
    return status.HTTP_202_ACCEPTED, headers


@router.get("", response_model=TaskPage, responses=error_responses(422, 503))
async def list_tasks(
    service: ServiceDep,
    who: PrincipalDep,
    status: TaskStatus | None = None,
    algorithm: Annotated[str | None, Query(max_length=64, pattern=NAME_PATTERN)] = None,
    schedule: Annotated[
        str | None, Query(max_length=64, pattern=NAME_PATTERN, description="made by it")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page")
    ] = None,
) -> TaskPage:
    return await service.list_tasks(
        status=status,
        algorithm=algorithm,
        schedule=schedule,
        limit=limit,
        cursor=cursor,
        visible_to=who.task_scope,
    )


@router.get("/{task_id}", response_model=TaskPublic, responses=error_responses(404, 503))
async def get_task(task_id: TaskIdDep, service: ServiceDep, who: PrincipalDep) -> TaskPublic:
    return await service.get(task_id, visible_to=who.task_scope)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(404, 409, 503),
)
async def delete_task(task_id: TaskIdDep, service: ServiceDep, who: PrincipalDep) -> Response:
    """Deletes a finished task with its events and attempts (`409` while it is unfinished)."""
    await service.delete(task_id, visible_to=who.task_scope)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{task_id}/attempts", responses=error_responses(404, 503))
async def task_attempts(
    task_id: TaskIdDep, service: ServiceDep, who: PrincipalDep
) -> dict[str, Any]:
    """Every run of the task, first first: how each ended, where and when."""
    attempts = await service.attempts(task_id, visible_to=who.task_scope)
    return {"items": [attempt.model_dump(mode="json") for attempt in attempts]}


@router.post(
    "/{task_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskPublic,
    responses=error_responses(404, 409, 503),
)
async def cancel_task(
    task_id: TaskIdDep, service: ServiceDep, watch: WatchDep, who: PrincipalDep
) -> TaskPublic:
    """Cancels the task; answers once its run has stopped (or after a short wait)."""
    return await cancel(task_id, service, watch, who)


async def cancel(
    task_id: str, service: TaskService, watch: TaskWatcher, who: Principal
) -> TaskPublic:
    """The cancel route's work (here, and in app.api.hot_routes)."""
    task = await service.cancel(task_id, visible_to=who.task_scope, api_key_id=who.key_id)
    if not task.status.finished:  # running on another replica: wait for its word
        task = await watch.wait(task_id, CANCEL_WAIT_S)
    return task


@router.post(
    "/{task_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskPublic,
    responses=error_responses(404, 409, 503),
)
async def retry_task(task_id: TaskIdDep, service: ServiceDep, who: PrincipalDep) -> TaskPublic:
    """Runs a failed, cancelled or timed-out task again as its next attempt (its earlier
    attempts stay in /attempts); 409 for an unfinished or succeeded task."""
    return await service.retry(task_id, visible_to=who.task_scope, api_key_id=who.key_id)
