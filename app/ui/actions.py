"""The dashboard's actions, each behind the same-origin check and the access table (admin
keys only), each through the service the API uses: cancel or retry a task; cancel or retry
every task a filter matches; pause, resume and change an algorithm's policy; pause and
resume a schedule."""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.domain.errors import InvalidRequest
from app.domain.keys import ANONYMOUS, Principal
from app.domain.policy import Policy
from app.replica import ReplicaContext
from app.service.tasks import CANCEL_WAIT_S
from app.store.bulk import BulkAction
from app.ui.bulk_form import FILTER_FIELDS, filter_of
from app.ui.deps import (
    AlgorithmDep,
    ContextDep,
    ScheduleDep,
    TaskIdDep,
    field_of,
    form_of,
    key_id_of,
    principal_in,
)
from app.ui.pages import algorithm_page, bulk_page, render
from app.ui.policy_form import changes_of, pause_seconds
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


@router.post("/tasks/{task_id}/retry")
async def retry(
    request: Request, task_id: TaskIdDep, _: SameOrigin, context: ContextDep
) -> Response:
    """Runs the task again as `POST /v1/tasks/{id}/retry` does (409 unless it failed, was
    cancelled or timed out), then shows its page afresh (its live part follows it again)."""
    await context.service.retry(task_id, api_key_id=key_id_of(request))
    page = f"/ui/tasks/{task_id}"
    if request.headers.get("hx-request"):
        return Response(headers={"HX-Redirect": page})
    return RedirectResponse(page, status_code=303)


async def _bulk(request: Request, action: BulkAction, context: ReplicaContext) -> Response:
    form = await form_of(request)
    values = {name: field_of(form, name) for name in (*FILTER_FIELDS, "action")}
    values["action"] = action
    try:
        where = filter_of(values)
    except InvalidRequest as exc:
        page = await bulk_page(request, {**values, "action": ""}, error=str(exc))
        page.status_code = exc.status_code
        return page
    key_id = key_id_of(request)
    run = context.bulk.cancel if action == "cancel" else context.bulk.retry
    done = await run(where, api_key_id=key_id)
    return await bulk_page(request, values, done=done)


@router.post("/bulk/cancel")
async def bulk_cancel(request: Request, _: SameOrigin, context: ContextDep) -> Response:
    """Cancels what the filter matches, as `POST /v1/bulk/cancel` does."""
    return await _bulk(request, "cancel", context)


@router.post("/bulk/retry")
async def bulk_retry(request: Request, _: SameOrigin, context: ContextDep) -> Response:
    """Runs again what the filter matches, as `POST /v1/bulk/retry` does."""
    return await _bulk(request, "retry", context)


def _back_to(name: str) -> RedirectResponse:
    return RedirectResponse(f"/ui/algorithms/{quote(name, safe='')}", status_code=303)


async def _refused(request: Request, name: str, exc: InvalidRequest, **entered: Any) -> Response:
    """The algorithm's page again, saying why (the API's 422 message)."""
    page = await algorithm_page(request, name, error=str(exc), entered=entered)
    page.status_code = exc.status_code
    return page


@router.post("/algorithms/{name}/pause")
async def pause(
    request: Request, name: AlgorithmDep, _: SameOrigin, context: ContextDep
) -> Response:
    """Pauses as `POST /v1/algorithms/{name}/pause` does (for `for_s` seconds, if given)."""
    form = await form_of(request)
    try:
        for_s = pause_seconds(field_of(form, "for_s"))
        await context.algorithms.pause(name, for_s, by=_actor(request))
    except InvalidRequest as exc:
        return await _refused(request, name, exc)
    return _back_to(name)


@router.post("/algorithms/{name}/resume")
async def resume(
    request: Request, name: AlgorithmDep, _: SameOrigin, context: ContextDep
) -> Response:
    await context.algorithms.resume(name, by=_actor(request))
    return _back_to(name)


@router.post("/algorithms/{name}")
async def change_policy(
    request: Request, name: AlgorithmDep, _: SameOrigin, context: ContextDep
) -> Response:
    """Changes the fields the form changed, as `PATCH /v1/algorithms/{name}` does."""
    form = await form_of(request)
    current = Policy.model_validate(await context.algorithms.get(name))
    changes = changes_of(form, current)
    try:
        if changes:
            await context.algorithms.change(name, changes, by=_actor(request))
    except InvalidRequest as exc:
        return await _refused(request, name, exc, **{k: v[0] for k, v in form.items()})
    return _back_to(name)


def _to_schedule(name: str) -> RedirectResponse:
    return RedirectResponse(f"/ui/schedules/{quote(name, safe='')}", status_code=303)


@router.post("/schedules/{name}/pause")
async def pause_schedule(item: ScheduleDep, _: SameOrigin, context: ContextDep) -> Response:
    """Pauses as `POST /v1/schedules/{name}/pause` does: no tick fires until resumed."""
    await context.schedules.pause(item.name)
    return _to_schedule(item.name)


@router.post("/schedules/{name}/resume")
async def resume_schedule(item: ScheduleDep, _: SameOrigin, context: ContextDep) -> Response:
    """Resumes as `POST /v1/schedules/{name}/resume` does: from the next tick on."""
    await context.schedules.resume(item.name)
    return _to_schedule(item.name)


def _actor(request: Request) -> Principal:
    return principal_in(request) or ANONYMOUS
