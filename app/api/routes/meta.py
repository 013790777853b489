"""/v1/algorithms and /v1/stats."""

from typing import Any

from fastapi import APIRouter

from app.api.deps import ServiceDep

router = APIRouter(prefix="/v1", tags=["meta"])


@router.get("/algorithms")
async def list_algorithms(service: ServiceDep) -> dict[str, Any]:
    return {"items": await service.algorithms()}


@router.get("/stats")
async def stats(service: ServiceDep) -> dict[str, Any]:
    return await service.stats()
