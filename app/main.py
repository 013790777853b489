"""create_app(): the FastAPI application, its lifespan, routes and error handlers."""

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import metadata

from fastapi import FastAPI
from starlette.types import Scope

from app.api.auth import Authorization
from app.api.docs import install_docs
from app.api.errors import install_error_handlers
from app.api.headers import DefensiveHeaders
from app.api.hot_routes import HotRoutes
from app.api.limits import BodySizeLimit
from app.api.openapi import install_openapi
from app.api.routes import (
    algorithms,
    bulk,
    debug,
    health,
    keys,
    meta,
    metrics,
    schedules,
    tasks,
    updates,
)
from app.core.config import Settings, get_settings
from app.observe.http_metrics import HttpMetrics
from app.observe.metrics import Metrics
from app.replica import running_replica
from app.service.dashboard import Dashboard
from app.ui import guard_dashboard, install_dashboard

log = logging.getLogger(__name__)


def _replica_metrics(scope: Scope) -> Metrics | None:
    context = getattr(scope["app"].state, "context", None)
    return None if context is None else context.runner.metrics


def create_app(
    settings: Settings | None = None, *, on_replica_failure: Callable[[], None] | None = None
) -> FastAPI:
    """The app; `on_replica_failure` is called when the replica stops on its own (a fault
    its loops could not survive), so that the server exits instead of serving unready."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.replica_failed = False
        started = False
        try:
            async with running_replica(settings) as context:
                app.state.context = context
                # what the dashboard and /metrics read
                app.state.dashboard = Dashboard(context.service, context.algorithms)
                started = True
                yield
        except Exception:
            if started:
                app.state.replica_failed = True
                log.critical("the replica stopped on an unexpected error; exiting", exc_info=True)
                if on_replica_failure is not None:
                    on_replica_failure()
            raise

    app = FastAPI(
        title="taskbeat",
        version=metadata.version("taskbeat"),  # the one place: the package metadata
        summary="Long tasks over REST, run in-process, no message queue.",
        lifespan=lifespan,
        docs_url=None,  # served from the package by install_docs: no CDN
        redoc_url=None,
    )
    app.add_middleware(HotRoutes)  # innermost: answers the two hottest routes itself
    app.add_middleware(Authorization)  # a refused request's body is never read
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    guard_dashboard(app)
    app.add_middleware(HttpMetrics, metrics=_replica_metrics)
    app.add_middleware(DefensiveHeaders)  # added last: outermost, so 413s carry them too
    install_error_handlers(app)
    app.include_router(tasks.router)
    app.include_router(bulk.router)
    app.include_router(updates.router)
    app.include_router(algorithms.router)
    app.include_router(schedules.router)
    app.include_router(meta.router)
    app.include_router(keys.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(debug.router)
    install_dashboard(app)
    install_docs(app)
    install_openapi(app)
    return app
