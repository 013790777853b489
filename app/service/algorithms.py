"""The algorithms as operated resources: their policies in force, live figures, changes."""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from app.domain.errors import InvalidRequest, NotFound
from app.domain.keys import ANONYMOUS, Principal
from app.domain.models import utcnow
from app.domain.policy import Policy
from app.runner.admission import HINT_POLICY
from app.runner.runner import Runner
from app.service.keys import log_change

MAX_PAUSE_S = 366 * 24 * 3600


@dataclass
class AlgorithmService:
    runner: Runner

    def _policy(self, name: str) -> Policy:
        if name not in self.runner.policies.configured:
            raise NotFound(f"no algorithm {name!r}")
        return self.runner.policies.policy(name)

    async def _shown(self, policies: list[Policy]) -> list[dict[str, Any]]:
        """Each policy with `running` and `waiting` over the cluster, read now."""
        figures = await self.runner.store.queue_figures()
        shown = []
        for policy in policies:
            running, waiting = figures.get(policy.name, (0, 0))
            body = policy.model_dump(mode="json")
            body["paused"] = policy.paused_at(utcnow())
            shown.append({**body, "running": running, "waiting": waiting})
        return shown

    async def list(self) -> list[dict[str, Any]]:
        names = sorted(self.runner.policies.configured)
        return await self._shown([self.runner.policies.policy(name) for name in names])

    async def get(self, name: str) -> dict[str, Any]:
        (shown,) = await self._shown([self._policy(name)])
        return shown

    async def change(
        self, name: str, changes: dict[str, Any], *, by: Principal = ANONYMOUS
    ) -> dict[str, Any]:
        self._policy(name)
        if "name" in changes:
            raise InvalidRequest("name: an algorithm cannot be renamed")
        await self._change(name, changes)
        log_change(by, f"changed {', '.join(sorted(changes)) or 'nothing'} of algorithm", name)
        return await self.get(name)

    async def pause(
        self, name: str, for_s: float | None, *, by: Principal = ANONYMOUS
    ) -> dict[str, Any]:
        self._policy(name)
        if for_s is not None and not 0 < for_s <= MAX_PAUSE_S:
            raise InvalidRequest(f"for_s: must be more than 0 and at most {MAX_PAUSE_S}")
        until = None if for_s is None else (utcnow() + timedelta(seconds=for_s)).isoformat()
        await self._change(name, {"paused": True, "paused_until": until})
        log_change(by, "paused algorithm" if for_s is None else f"paused for {for_s} s", name)
        return await self.get(name)

    async def resume(self, name: str, *, by: Principal = ANONYMOUS) -> dict[str, Any]:
        self._policy(name)
        await self._change(name, {"paused": False, "paused_until": None})
        log_change(by, "resumed algorithm", name)
        return await self.get(name)

    async def _change(self, name: str, changes: dict[str, Any]) -> None:
        await self.runner.policies.change(name, changes)
        await self.runner.admission.publish(HINT_POLICY)  # every replica re-reads it now
