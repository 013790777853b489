"""Liveness (answers, touches nothing) and readiness (database, Redis, runner)."""

from typing import Any

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from app.api.deps import ContextDep
from app.api.errors import ErrorDetail, error_responses
from app.api.json_body import StrictJSONRoute

router = APIRouter(tags=["health"], route_class=StrictJSONRoute)
CHECK_TIMEOUT_S = 2.0


class Readiness(BaseModel):
    """Each check is "ok" or says what is wrong; not ready adds the error envelope."""

    model_config = ConfigDict(extra="allow")

    status: str
    replica: str
    database: str
    redis: str
    runner: str
    error: ErrorDetail | None = None


@router.get("/healthz", responses=error_responses())
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=None,
    responses={
        200: {"model": Readiness},
        503: {"model": Readiness, "description": "not ready: draining, or a check failed"},
        **error_responses(),
    },
)
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
    failing = [f"{name}: {value}" for name, value in checks.items() if value != "ok"]
    body = {"status": "not ready" if failing else "ready", "replica": context.replica_id, **checks}
    if context.embedded_redis_url is not None:
        body["embedded_redis"] = context.embedded_redis_url
    if failing:
        body["error"] = {"code": "not_ready", "message": "; ".join(failing)}
    return JSONResponse(body, status_code=503 if failing else 200)
