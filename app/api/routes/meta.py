"""/v1/stats."""

from typing import Any

from fastapi import APIRouter

from app.api.deps import PrincipalDep, ServiceDep
from app.api.errors import error_responses
from app.api.json_body import StrictJSONRoute

router = APIRouter(prefix="/v1", tags=["meta"], route_class=StrictJSONRoute)


@router.get("/stats", responses=error_responses(503))
async def stats(service: ServiceDep, who: PrincipalDep) -> dict[str, Any]:
    """Counts over every task, or over the key's own for a client key."""
    return await service.stats(visible_to=who.task_scope)
