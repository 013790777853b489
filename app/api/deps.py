"""Dependency aliases, so a route reads like a sentence.

The getters are `async def` on purpose: FastAPI runs a plain `def` dependency in its
thread pool, which would cost a thread hop per request for an attribute lookup."""

from typing import Annotated

from fastapi import Depends, Request

from app.api.auth import principal_of
from app.api.params import idempotency_key, last_event_id, task_id_in_path
from app.domain.keys import Principal
from app.replica import ReplicaContext
from app.service.algorithms import AlgorithmService
from app.service.bulk import BulkActions
from app.service.callbacks import CallbackReceiver
from app.service.keys import KeyService
from app.service.schedules import ScheduleService
from app.service.tasks import TaskService
from app.service.waits import TaskWatcher


def _context(request: Request) -> ReplicaContext:
    context: ReplicaContext = request.app.state.context
    return context


async def get_context(request: Request) -> ReplicaContext:
    return _context(request)


async def get_service(request: Request) -> TaskService:
    return _context(request).service


async def get_algorithms(request: Request) -> AlgorithmService:
    return _context(request).algorithms


async def get_schedules(request: Request) -> ScheduleService:
    return _context(request).schedules


async def get_watch(request: Request) -> TaskWatcher:
    return _context(request).watch


async def get_callbacks(request: Request) -> CallbackReceiver:
    return _context(request).callbacks


async def get_keys(request: Request) -> KeyService:
    return _context(request).keys


async def get_bulk(request: Request) -> BulkActions:
    return _context(request).bulk


async def get_principal(request: Request) -> Principal:
    """Who the request speaks for, as the auth layer found (app.api.auth)."""
    return principal_of(request.scope)


ContextDep = Annotated[ReplicaContext, Depends(get_context)]
ServiceDep = Annotated[TaskService, Depends(get_service)]
AlgorithmsDep = Annotated[AlgorithmService, Depends(get_algorithms)]
SchedulesDep = Annotated[ScheduleService, Depends(get_schedules)]
WatchDep = Annotated[TaskWatcher, Depends(get_watch)]
CallbacksDep = Annotated[CallbackReceiver, Depends(get_callbacks)]
KeysDep = Annotated[KeyService, Depends(get_keys)]
BulkDep = Annotated[BulkActions, Depends(get_bulk)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
TaskIdDep = Annotated[str, Depends(task_id_in_path)]
LastEventIdDep = Annotated[int, Depends(last_event_id)]
IdempotencyKeyDep = Annotated[str | None, Depends(idempotency_key)]
