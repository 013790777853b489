"""/v1/algorithms: each algorithm's policy and live figures; change, pause, resume."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import AlgorithmsDep, PrincipalDep
from app.api.errors import error_responses
from app.api.json_body import StrictJSONRoute

router = APIRouter(prefix="/v1/algorithms", tags=["algorithms"], route_class=StrictJSONRoute)
# looked up in memory, never in SQL: any other text is a 404
NameDep = Annotated[str, Path()]


class PauseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    for_s: float | None = Field(default=None, gt=0, description="resume by itself after this")


@router.get("", responses=error_responses(503))
async def list_algorithms(algorithms: AlgorithmsDep) -> dict[str, Any]:
    return {"items": await algorithms.list()}


@router.get("/{name}", responses=error_responses(404, 503))
async def get_algorithm(name: NameDep, algorithms: AlgorithmsDep) -> dict[str, Any]:
    return await algorithms.get(name)


@router.patch("/{name}", responses=error_responses(404, 422, 503))
async def change_algorithm(
    name: NameDep,
    algorithms: AlgorithmsDep,
    who: PrincipalDep,
    changes: Annotated[
        dict[str, Any] | None, Body(description="any subset of the policy fields")
    ] = None,
) -> dict[str, Any]:
    """Changes the policy on every replica (within 1 s); a null field goes back to its
    configured value."""
    return await algorithms.change(name, changes or {}, by=who)


@router.post("/{name}/pause", responses=error_responses(404, 422, 503))
async def pause_algorithm(
    name: NameDep, algorithms: AlgorithmsDep, who: PrincipalDep, body: PauseBody | None = None
) -> dict[str, Any]:
    """No new runs of it start on any replica (running ones go on; creates still wait)."""
    return await algorithms.pause(name, None if body is None else body.for_s, by=who)


@router.post("/{name}/resume", responses=error_responses(404, 503))
async def resume_algorithm(
    name: NameDep, algorithms: AlgorithmsDep, who: PrincipalDep
) -> dict[str, Any]:
    return await algorithms.resume(name, by=who)
