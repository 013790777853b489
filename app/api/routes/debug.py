"""/debug: the profiler (pyinstrument), the running asyncio tasks with their stacks, and the
event loop's lag history. Answers 404 unless TASKBEAT_DEBUG_ENDPOINTS=true.

When API keys land, these are admin-only."""

import asyncio
import io
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from app.api.deps import ContextDep
from app.domain.errors import NotFound

MAX_PROFILE_S = 60.0
# pyinstrument's page is one file of inline script and style: its own policy, nothing remote.
PROFILE_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"
STACK_LIMIT = 30


async def debug_enabled(context: ContextDep) -> None:
    if not context.settings.debug_endpoints:
        raise NotFound("no such page (set TASKBEAT_DEBUG_ENDPOINTS=true for /debug)")


router = APIRouter(
    prefix="/debug",
    tags=["debug"],
    include_in_schema=False,
    dependencies=[Depends(debug_enabled)],
)
profiling = anyio.Lock()


@router.get("/profile")
async def profile(
    seconds: Annotated[float, Query(gt=0, le=MAX_PROFILE_S)] = 5.0,
    format: Annotated[str, Query(pattern="^(html|speedscope)$")] = "html",
) -> Response:
    """A CPU profile of the whole event-loop thread over `seconds`: every request and run
    that ran meanwhile, not only this one. One profile at a time."""
    # Imported here: a service with /debug off (the default) never loads the profiler.
    from pyinstrument import Profiler
    from pyinstrument.renderers import SpeedscopeRenderer

    async with profiling:
        # async_mode "disabled": sample the thread's every frame, not this task's alone
        profiler = Profiler(interval=0.001, async_mode="disabled")
        profiler.start()
        try:
            await anyio.sleep(seconds)
        finally:
            session = profiler.stop()
    if format == "speedscope":
        body = SpeedscopeRenderer().render(session)
        headers = {"Content-Disposition": 'attachment; filename="taskbeat.speedscope.json"'}
        return Response(body, media_type="application/json", headers=headers)
    html = profiler.output_html()
    return HTMLResponse(html, headers={"Content-Security-Policy": PROFILE_CSP})


def _stack(task: "asyncio.Task[Any]") -> str:
    out = io.StringIO()
    task.print_stack(limit=STACK_LIMIT, file=out)
    return out.getvalue()


@router.get("/tasks")
async def tasks() -> JSONResponse:
    """Every asyncio task of the service's loop, with its stack."""
    running = sorted(asyncio.all_tasks(), key=lambda task: task.get_name())
    items = [
        {"name": task.get_name(), "coroutine": repr(task.get_coro()), "stack": _stack(task)}
        for task in running
    ]
    return JSONResponse({"count": len(items), "items": items})


@router.get("/lag")
async def lag(context: ContextDep) -> JSONResponse:
    """The event loop's worst lag of each second over the last ten minutes, and now."""
    runner = context.runner
    return JSONResponse(
        {"summary_ms": runner.loop_lag.summary(), "seconds": runner.metrics.lag_history.points()}
    )
