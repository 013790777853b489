"""Liveness (answers, touches nothing) and readiness (database, Redis, runner)."""

from typing import Any

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import ContextDep

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(context: ContextDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    for name, probe in (("database", context.db.ping), ("redis", context.live.ping)):
        try:
            with anyio.fail_after(CHECK_TIMEOUT_S):
                await probe()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unavailable: {exc or type(exc).__name__}"
    checks["runner"] = "ok" if context.runner.accepting else "not accepting"
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ready else "not ready", "replica": context.replica_id, **checks}
    if context.embedded_redis_url is not None:
        body["embedded_redis"] = context.embedded_redis_url
    return JSONResponse(body, status_code=200 if ready else 503)
