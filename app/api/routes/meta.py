"""/v1/stats."""

from typing import Any

from fastapi import APIRouter

from app.api.deps import ServiceDep
from app.api.errors import error_responses
from app.api.json_body import StrictJSONRoute

router = APIRouter(prefix="/v1", tags=["meta"], route_class=StrictJSONRoute)


@router.get("/stats", responses=error_responses(503))
async def stats(service: ServiceDep) -> dict[str, Any]:
    return await service.stats()
