"""Request bodies parsed by app.core.strict_json, so that every bad body is a 422 that says
what is wrong (FastAPI's own parser answers 400 to deep nesting, huge numbers, bad UTF-8)."""

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from app.core import strict_json


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            raw = await self.body()
            try:
                self._json = strict_json.loads(raw)
            except strict_json.JSONRefused as exc:
                # FastAPI turns a JSONDecodeError, and only that, into a 422 validation error
                raise json.JSONDecodeError(str(exc), raw.decode("latin-1"), 0) from exc
        return self._json


class StrictJSONRoute(APIRoute):
    """The route class of every router: its endpoint sees a StrictJSONRequest."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
