"""The dashboard's dependency aliases (the dashboard stands beside the API, not on it)."""

from typing import Annotated

from fastapi import Depends, Path, Request

from app.domain.errors import NotFound
from app.domain.keys import Principal
from app.domain.models import is_task_id
from app.replica import ReplicaContext


async def get_context(request: Request) -> ReplicaContext:
    context: ReplicaContext = request.app.state.context
    return context


async def task_id_in_path(task_id: Annotated[str, Path()]) -> str:
    """Anything but a UUID names no task: 404 with no lookup, as in the API."""
    if not is_task_id(task_id):
        raise NotFound(f"no task {task_id[:64]}")
    return task_id


def key_id_of(request: Request) -> str | None:
    """The API key behind this request (None with auth off), for the transition log."""
    principal = request.scope.get("state", {}).get("principal")
    return principal.key_id if isinstance(principal, Principal) else None


ContextDep = Annotated[ReplicaContext, Depends(get_context)]
TaskIdDep = Annotated[str, Depends(task_id_in_path)]
