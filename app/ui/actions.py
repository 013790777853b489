"""The dashboard's actions, each behind the same-origin check. Cancel is the one the API has
today; retry and bulk actions come with their API routes."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.service.tasks import CANCEL_WAIT_S
from app.ui.deps import ContextDep, TaskIdDep, key_id_of
from app.ui.pages import render
from app.ui.security import same_origin

router = APIRouter(prefix="/ui", include_in_schema=False)
SameOrigin = Annotated[None, Depends(same_origin)]  # after the path's checks: 404 comes first


@router.post("/tasks/{task_id}/cancel")
async def cancel(
    request: Request, task_id: TaskIdDep, _: SameOrigin, context: ContextDep
) -> Response:
    """Cancels as `POST /v1/tasks/{id}/cancel` does; answers with the task's live part (htmx)
    or sends a plain form back to the task's page."""
    task = await context.service.cancel(task_id, api_key_id=key_id_of(request))
    if not task.status.finished:  # running on another replica: wait for its word
        task = await context.watch.wait(task_id, CANCEL_WAIT_S)
    if not request.headers.get("hx-request"):
        return RedirectResponse(f"/ui/tasks/{task_id}", status_code=303)
    answer: HTMLResponse = render(request, "_task_live.html", "tasks", task=task)
    return answer
