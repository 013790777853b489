"""The dashboard's pages: overview, tasks, a task, bulk, algorithms, an algorithm,
schedules, a schedule, replicas.
Server-rendered; the live parts come from `app.ui.live` (event streams) or a short
fragment refresh."""

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from app.domain.cadence import Cadence
from app.domain.errors import InvalidRequest
from app.domain.models import BulkAnswer, TaskStatus
from app.service.dashboard import Dashboard
from app.store.dashboard import TaskFilter
from app.ui.bulk_form import action_of, filter_of
from app.ui.charts import bar_chart
from app.ui.deps import AlgorithmDep, ContextDep, ScheduleDep, TaskIdDep, principal_in
from app.ui.policy_form import FIELDS, RETRY_CAUSES
from app.ui.security import can_act
from app.ui.templating import templates

router = APIRouter(prefix="/ui", include_in_schema=False)
PAGE_SIZE = 50
NEXT_FIRINGS = 5  # the ticks a schedule's page shows ahead
ID_PREFIX = re.compile(r"^[0-9a-f-]{1,36}$")
# printable text or nothing (the form's "any"): PostgreSQL cannot compare a NUL
NAME_OR_ANY = r"^[^\x00-\x1f\x7f]*$"


def dashboard_of(request: Request) -> Dashboard:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


def render(request: Request, template: str, page: str, **context: Any) -> HTMLResponse:
    dashboard = dashboard_of(request)
    return templates.TemplateResponse(
        request,
        template,
        {
            "page": page,
            "can_act": can_act(request),
            "principal": principal_in(request),
            "stale_after_s": dashboard.stale_after_s,
            "replica_id": dashboard.service.runner.replica_id,
            **context,
        },
    )


@router.get("")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/overview", status_code=307)


@router.get("/overview")
async def overview(request: Request) -> HTMLResponse:
    found = await dashboard_of(request).overview()
    charts = [
        bar_chart("Succeeded per minute", found.minutes, found.succeeded_per_minute),
        bar_chart("Failed or timed out per minute", found.minutes, found.failed_per_minute),
    ]
    return render(
        request,
        "overview.html",
        "overview",
        overview=found,
        charts=charts,
    )


def _utc(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest(f"{name} is not a date and time: {value!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@router.get("/tasks")
async def tasks(
    request: Request,
    status: Annotated[str, Query(max_length=16)] = "",
    algorithm: Annotated[str, Query(max_length=64, pattern=NAME_OR_ANY)] = "",
    created_after: Annotated[str, Query(max_length=40)] = "",
    created_before: Annotated[str, Query(max_length=40)] = "",
    q: Annotated[str, Query(max_length=36)] = "",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    search = q.strip().lower()
    if search and not ID_PREFIX.match(search):
        raise InvalidRequest("search by task id: hexadecimal digits and dashes")
    try:
        wanted = TaskStatus(status) if status else None
    except ValueError as exc:
        raise InvalidRequest(f"no status {status!r}") from exc
    where = TaskFilter(
        status=wanted,
        algorithm=algorithm or None,
        created_after=_utc(created_after, "created_after"),
        created_before=_utc(created_before, "created_before"),
        id_prefix=search or None,
    )
    dashboard = dashboard_of(request)
    found, next_cursor = await dashboard.tasks_page(where, limit=PAGE_SIZE, cursor=cursor)
    filters = {
        "status": status,
        "algorithm": algorithm,
        "created_after": created_after,
        "created_before": created_before,
        "q": search,
    }
    return render(
        request,
        "tasks.html",
        "tasks",
        tasks=found,
        filters=filters,
        algorithms=dashboard.service.registry.names(),
        next_cursor=next_cursor,
        first_page=cursor is None,
        running_ids=",".join(t.task_id for t in found if t.status is TaskStatus.RUNNING),
    )


@router.get("/tasks/{task_id}")
async def task(request: Request, task_id: TaskIdDep) -> HTMLResponse:
    found, events, attempts = await dashboard_of(request).task_detail(task_id)
    return render(request, "task.html", "tasks", task=found, events=events, attempts=attempts)


@router.get("/algorithms")
async def algorithms(request: Request) -> HTMLResponse:
    items = await dashboard_of(request).algorithms()
    return render(request, "algorithms.html", "algorithms", items=items)


async def algorithm_page(
    request: Request, name: str, *, error: str | None = None, entered: dict[str, str] | None = None
) -> HTMLResponse:
    """One algorithm: its figures, pause and resume, its policy (a form for admins);
    `error` and `entered` show a refused change with what was typed."""
    item = await dashboard_of(request).algorithm(name)
    return render(
        request,
        "algorithm.html",
        "algorithms",
        item=item,
        fields=FIELDS,
        retry_causes=RETRY_CAUSES,
        error=error,
        entered=entered or {},
    )


@router.get("/algorithms/{name}")
async def algorithm(request: Request, name: AlgorithmDep) -> HTMLResponse:
    return await algorithm_page(request, name)


@router.get("/schedules")
async def schedules(request: Request, context: ContextDep) -> HTMLResponse:
    items = await context.schedules.list()
    return render(request, "schedules.html", "schedules", items=items)


@router.get("/schedules/{name}")
async def schedule(request: Request, item: ScheduleDep) -> HTMLResponse:
    """One schedule: its fields, its next ticks (none while paused), the last tasks it made
    with their status, and for admins pause or resume."""
    first = item.next_fire_at
    upcoming = (
        [] if first is None else Cadence(item.cron, item.timezone).ticks_from(first, NEXT_FIRINGS)
    )
    return render(request, "schedule.html", "schedules", item=item, upcoming=upcoming)


async def bulk_page(
    request: Request,
    values: dict[str, str],
    *,
    done: BulkAnswer | None = None,
    error: str | None = None,
) -> HTMLResponse:
    """The bulk page: the filter, how many tasks the chosen action would take now (counted
    before anything is done), and after an action what it did."""
    context = request.app.state.context
    action = action_of(values.get("action", ""))
    where = filter_of(values)
    matching = None if action is None else await context.bulk.count(where, action)
    return render(
        request,
        "bulk.html",
        "bulk",
        values=values,
        action=action,
        matching=matching,
        done=done,
        error=error,
        algorithms=dashboard_of(request).service.registry.names(),
    )


@router.get("/bulk")
async def bulk(
    request: Request,
    algorithm: Annotated[str, Query(max_length=64)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
    created_before: Annotated[str, Query(max_length=40)] = "",
    action: Annotated[str, Query(max_length=16)] = "",
) -> HTMLResponse:
    values = {
        "algorithm": algorithm,
        "status": status,
        "created_before": created_before,
        "action": action,
    }
    return await bulk_page(request, values)


@router.get("/replicas")
async def replicas(request: Request) -> HTMLResponse:
    dashboard = dashboard_of(request)
    return render(
        request,
        "replicas.html",
        "replicas",
        replicas=await dashboard.replicas(),
        beats=await dashboard.beats(),
    )
