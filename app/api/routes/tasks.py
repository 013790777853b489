"""/v1/tasks: create, read, list, cancel."""

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.api.deps import ServiceDep, WatchDep
from app.models import TaskCreate, TaskPage, TaskPublic, TaskStatus
from app.service import CANCEL_WAIT_S

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=TaskPublic)
async def create_task(body: TaskCreate, service: ServiceDep, response: Response) -> TaskPublic:
    task = await service.create(body)
    response.headers["Location"] = f"/v1/tasks/{task.task_id}"
    return task


@router.get("", response_model=TaskPage)
async def list_tasks(
    service: ServiceDep,
    status: TaskStatus | None = None,
    algorithm: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> TaskPage:
    return await service.list_tasks(status=status, algorithm=algorithm, limit=limit, cursor=cursor)


@router.get("/{task_id}", response_model=TaskPublic)
async def get_task(task_id: str, service: ServiceDep) -> TaskPublic:
    return await service.get(task_id)


@router.post("/{task_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=TaskPublic)
async def cancel_task(task_id: str, service: ServiceDep, watch: WatchDep) -> TaskPublic:
    """Cancels the task; answers once its run has stopped (or after a short wait)."""
    task = await service.cancel(task_id)
    if not task.status.finished:  # running on another replica: wait for its word
        task = await watch.wait(task_id, CANCEL_WAIT_S)
    return task
