"""/v1/schedules: tasks fired by cron or an interval, one per tick over every replica."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Response, status

from app.api.deps import SchedulesDep
from app.api.errors import error_responses
from app.api.json_body import StrictJSONRoute
from app.domain.schedule import ScheduleCreate, SchedulePublic

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], route_class=StrictJSONRoute)
# any text: one that no schedule may be named is a 404 before any SQL sees it
NameDep = Annotated[str, Path()]


@router.get("", responses=error_responses(503))
async def list_schedules(schedules: SchedulesDep) -> dict[str, list[SchedulePublic]]:
    return {"items": await schedules.list()}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SchedulePublic,
    responses={
        201: {"headers": {"Location": {"schema": {"type": "string"}}}},
        **error_responses(409, 422, 503),
    },
)
async def create_schedule(
    body: ScheduleCreate, schedules: SchedulesDep, response: Response
) -> SchedulePublic:
    """Fires `algorithm` with `input` at every tick of `cron` in `timezone` (409: the name
    is taken)."""
    schedule = await schedules.create(body)
    response.headers["Location"] = f"/v1/schedules/{schedule.name}"
    return schedule


@router.get("/{name}", response_model=SchedulePublic, responses=error_responses(404, 503))
async def get_schedule(name: NameDep, schedules: SchedulesDep) -> SchedulePublic:
    """The schedule, its next tick and the last tasks it made."""
    return await schedules.get(name)


@router.patch("/{name}", response_model=SchedulePublic, responses=error_responses(404, 422, 503))
async def change_schedule(
    name: NameDep,
    schedules: SchedulesDep,
    changes: Annotated[
        dict[str, Any] | None, Body(description="any subset of the fields but the name")
    ] = None,
) -> SchedulePublic:
    """Changes the schedule on every replica at once; a new cron or timezone starts its
    ticks afresh (none before the change is caught up)."""
    return await schedules.change(name, changes or {})


@router.delete(
    "/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, 503)
)
async def delete_schedule(name: NameDep, schedules: SchedulesDep) -> Response:
    """Fires no more; the tasks it made stay."""
    await schedules.delete(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{name}/pause", response_model=SchedulePublic, responses=error_responses(404, 503))
async def pause_schedule(name: NameDep, schedules: SchedulesDep) -> SchedulePublic:
    """Fires no tick until resumed; its tasks under way go on."""
    return await schedules.pause(name)


@router.post("/{name}/resume", response_model=SchedulePublic, responses=error_responses(404, 503))
async def resume_schedule(name: NameDep, schedules: SchedulesDep) -> SchedulePublic:
    """Fires again from the next tick (the ticks while it was paused are not caught up)."""
    return await schedules.resume(name)
