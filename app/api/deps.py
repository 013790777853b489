"""Dependency aliases, so a route reads like a sentence."""

from typing import Annotated

from fastapi import Depends, Request

from app.callbacks import CallbackReceiver
from app.context import ReplicaContext
from app.service import TaskService
from app.watch import TaskWatcher


def get_context(request: Request) -> ReplicaContext:
    context: ReplicaContext = request.app.state.context
    return context


def get_service(request: Request) -> TaskService:
    return get_context(request).service


ContextDep = Annotated[ReplicaContext, Depends(get_context)]
ServiceDep = Annotated[TaskService, Depends(get_service)]


def get_watch(request: Request) -> TaskWatcher:
    return get_context(request).watch


def get_callbacks(request: Request) -> CallbackReceiver:
    return get_context(request).callbacks


WatchDep = Annotated[TaskWatcher, Depends(get_watch)]
CallbacksDep = Annotated[CallbackReceiver, Depends(get_callbacks)]
