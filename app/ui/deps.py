"""The dashboard's dependency aliases (the dashboard stands beside the API, not on it)."""

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Path, Request

from app.domain.errors import InvalidRequest, NotFound
from app.domain.keys import Principal
from app.domain.models import is_task_id
from app.domain.schedule import SchedulePublic
from app.replica import ReplicaContext

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 64


async def get_context(request: Request) -> ReplicaContext:
    context: ReplicaContext = request.app.state.context
    return context


async def task_id_in_path(task_id: Annotated[str, Path()]) -> str:
    """Anything but a UUID names no task: 404 with no lookup, as in the API."""
    if not is_task_id(task_id):
        raise NotFound(f"no task {task_id[:64]}")
    return task_id


async def algorithm_in_path(request: Request, name: Annotated[str, Path()]) -> str:
    """An algorithm this service has, looked up in memory: any other name is a 404 (before
    the same-origin check, as in the API)."""
    context: ReplicaContext = request.app.state.context
    if name not in context.runner.policies.configured:
        raise NotFound(f"no algorithm {name[:64]!r}")
    return name


async def schedule_in_path(request: Request, name: Annotated[str, Path()]) -> SchedulePublic:
    """The schedule named in the path, with its last tasks, as `GET /v1/schedules/{name}`
    shows it; any other name is a 404 (before the same-origin check, as in the API)."""
    context: ReplicaContext = request.app.state.context
    return await context.schedules.get(name)


def principal_in(request: Request) -> Principal | None:
    """Who this request speaks for (None on the open pages: sign-in, sign-out)."""
    principal = request.scope.get("state", {}).get("principal")
    return principal if isinstance(principal, Principal) else None


def key_id_of(request: Request) -> str | None:
    """The API key behind this request (None with auth off), for the transition log."""
    principal = principal_in(request)
    return None if principal is None else principal.key_id


async def form_of(request: Request) -> dict[str, list[str]]:
    """The fields of a posted form (application/x-www-form-urlencoded, what the pages send;
    any other body has none). The body's size is bounded before it gets here."""
    if request.headers.get("content-type", "").split(";")[0].strip() != FORM_TYPE:
        return {}
    try:
        text = (await request.body()).decode()
        return parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError as exc:  # not UTF-8, or too many fields
        raise InvalidRequest(f"not a form of this dashboard: {exc}") from exc


def field_of(form: dict[str, list[str]], name: str) -> str:
    return form.get(name, [""])[0]


ContextDep = Annotated[ReplicaContext, Depends(get_context)]
TaskIdDep = Annotated[str, Depends(task_id_in_path)]
AlgorithmDep = Annotated[str, Depends(algorithm_in_path)]
ScheduleDep = Annotated[SchedulePublic, Depends(schedule_in_path)]
