"""Counts and times every HTTP answer by its route template (`/v1/tasks/{task_id}`), never
by its raw path: one series per route, however many task ids are asked for."""

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observe.metrics import Metrics

UNMATCHED = "unmatched"


def route_template(scope: Scope) -> str:
    """The template of the route that answered (the router leaves it in the scope)."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    if scope.get("endpoint") is not None and scope.get("root_path"):
        return f"{scope['root_path']}/{{path}}"  # a mounted app: its mount point
    return UNMATCHED


class HttpMetrics:
    """ASGI middleware; `metrics` is looked up per request (the replica makes it at start)."""

    def __init__(self, app: ASGIApp, *, metrics: Callable[[Scope], Metrics | None]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_s = time.perf_counter()
        status = 500

        async def remember_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        finally:
            metrics = self.metrics(scope)
            if metrics is not None:
                elapsed_s = time.perf_counter() - started_s
                metrics.http_answered(route_template(scope), scope["method"], status, elapsed_s)
