"""Schedules as an operated resource: create, read (with the next tick and the last tasks
made), change, pause, resume, delete; every change is in force on every replica at once."""

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.domain.errors import InvalidRequest, NotFound
from app.domain.models import utcnow
from app.domain.schedule import (
    NAME_PATTERN,
    ScheduleChange,
    ScheduleCreate,
    ScheduleFields,
    SchedulePublic,
    StoredSchedule,
)
from app.runner.admission import HINT_SCHEDULE
from app.runner.runner import Runner
from app.runner.scheduler import Scheduler

# Changes of these start the schedule's ticks afresh: none before the change is caught up.
RESTARTING_FIELDS = frozenset({"cron", "timezone", "paused"})


def invalid(exc: ValidationError) -> InvalidRequest:
    """The first problem of a body, naming its field."""
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]) or "body"
    message = str(error["msg"]).removeprefix("Value error, ")
    return InvalidRequest(f"{field}: {message}")


def known_name(name: str) -> str:
    """`name`, if a schedule may have it; NotFound otherwise (before any SQL sees it)."""
    if re.fullmatch(NAME_PATTERN, name) is None:
        raise NotFound(f"no schedule {name[:64]!r}")
    return name


@dataclass
class ScheduleService:
    runner: Runner
    scheduler: Scheduler

    def _check_algorithm(self, fields: ScheduleFields) -> None:
        if fields.algorithm not in self.runner.policies.configured:
            raise InvalidRequest(f"algorithm: no algorithm {fields.algorithm!r}")
        self.runner.registry.validate(fields.algorithm, fields.input)

    def _public(self, schedule: StoredSchedule, **extra: Any) -> SchedulePublic:
        return SchedulePublic(
            **schedule.model_dump(exclude={"declared", "since_at"}),
            next_fire_at=self.scheduler.next_fire_at(schedule, utcnow()),
            **extra,
        )

    async def _changed(self) -> None:
        self.scheduler.changed()
        await self.runner.admission.publish(HINT_SCHEDULE)

    async def list(self) -> list[SchedulePublic]:
        return [self._public(schedule) for schedule in await self.runner.store.all_schedules()]

    async def get(self, name: str) -> SchedulePublic:
        schedule = await self.runner.store.schedule(name=known_name(name))
        if schedule is None:
            raise NotFound(f"no schedule {name!r}")
        recent = await self.runner.store.recent_scheduled(name=name)
        return self._public(schedule, recent_tasks=recent)

    async def create(self, request: ScheduleCreate) -> SchedulePublic:
        """Conflict when the name is taken; InvalidRequest names a bad field."""
        self._check_algorithm(request)
        fields = request.model_dump(mode="json", exclude={"name"})
        schedule = await self.runner.store.create_schedule(name=request.name, fields=fields)
        await self._changed()
        return self._public(schedule)

    async def change(self, name: str, changes: dict[str, Any]) -> SchedulePublic:
        if "name" in changes:
            raise InvalidRequest("name: a schedule cannot be renamed")
        current = await self.runner.store.schedule(name=known_name(name))
        if current is None:
            raise NotFound(f"no schedule {name!r}")
        try:
            given = ScheduleChange.model_validate(changes).model_dump(
                mode="json", exclude_unset=True
            )
            if any(given.get(key, 0) is None for key in changes if key != "priority"):
                raise InvalidRequest("only priority may be set to null")
            merged = ScheduleFields.model_validate({**current.fields(), **given})
        except ValidationError as exc:
            raise invalid(exc) from None
        self._check_algorithm(merged)
        before = current.fields()
        restart = any(before[key] != given[key] for key in RESTARTING_FIELDS & set(given))
        schedule = await self.runner.store.change_schedule(name=name, fields=given, restart=restart)
        if schedule is None:
            raise NotFound(f"no schedule {name!r}")
        await self._changed()
        return self._public(schedule)

    async def pause(self, name: str) -> SchedulePublic:
        return await self.change(name, {"paused": True})

    async def resume(self, name: str) -> SchedulePublic:
        return await self.change(name, {"paused": False})

    async def delete(self, name: str) -> None:
        if not await self.runner.store.delete_schedule(name=known_name(name)):
            raise NotFound(f"no schedule {name!r}")
        await self._changed()
