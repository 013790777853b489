"""The hottest routes, `POST /v1/tasks`, `GET /v1/tasks/{task_id}` and
`POST /v1/tasks/{task_id}/cancel`, answered on a short path: without Starlette's router,
FastAPI's dependency solving and its validation of the answer against the response model,
which took about half of the service's CPU per request (docs/benchmarks.md).

It is the innermost ASGI layer, so everything around a request stays as it is for every
route: the access rule, the key's rate and the principal (app.api.auth), the body limit,
the defensive headers and the HTTP metrics. It answers only a request it understands
completely: a JSON body that is a valid create with a valid Idempotency-Key (if any), a
well-formed task id (a cancel's body, as the route's, is not read). Anything else goes to
the app (a read body replayed to it), so every refusal is the app's own answer; the routes
stay declared there, for /openapi.json too. The work is the routes' own (the same service
calls), and the task is encoded as FastAPI encodes it.
"""

import re
from collections.abc import Awaitable, Callable
from functools import partial

from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.auth import principal_of
from app.api.errors import error_answer
from app.api.params import is_idempotency_key
from app.api.routes.tasks import cancel, create_answer_head
from app.core import strict_json
from app.domain.models import TaskCreate, TaskPublic, is_task_id
from app.replica import ReplicaContext

TASKS = "/v1/tasks"
TASK_PATH = re.compile(r"/v1/tasks/([^/]+)")
CANCEL_PATH = re.compile(r"/v1/tasks/([^/]+)/cancel")
JSON_HEADERS = [(b"content-type", b"application/json")]
TASK_JSON = TypeAdapter(TaskPublic)


def is_json(scope: Scope) -> bool:
    """Content-Type application/json (parameters allowed), as the only one given."""
    values = [value for name, value in scope["headers"] if name == b"content-type"]
    return len(values) == 1 and values[0].partition(b";")[0].strip().lower() == b"application/json"


def idempotency_key_of(scope: Scope) -> tuple[bool, str | None]:
    """(understood, the key): one well-formed Idempotency-Key or none at all."""
    values = [value for name, value in scope["headers"] if name == b"idempotency-key"]
    if not values:
        return True, None
    key = values[0].decode("latin-1")
    return len(values) == 1 and is_idempotency_key(key), key


def replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` for the app after the body was read here: that body, then the client's."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def send_json(
    send: Send, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    raw = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    for name, value in (headers or {}).items():
        raw.append((name.lower().encode(), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def encoded(task: TaskPublic) -> bytes:
    """The task as FastAPI encodes a `response_model=TaskPublic` answer."""
    return TASK_JSON.dump_json(task, by_alias=True)


class HotRoutes:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._handler(scope)
        context: ReplicaContext | None = getattr(scope["app"].state, "context", None)
        if handler is None or context is None:
            await self.app(scope, receive, send)
            return
        await handler(context, scope, receive, send)

    def _handler(
        self, scope: Scope
    ) -> Callable[[ReplicaContext, Scope, Receive, Send], Awaitable[None]] | None:
        if scope["type"] != "http":
            return None
        method, path = scope["method"], scope["path"]
        if method == "POST" and path == TASKS:
            return self._create
        if method == "GET" and (match := TASK_PATH.fullmatch(path)) and is_task_id(match[1]):
            return partial(self._get, match[1])
        if method == "POST" and (match := CANCEL_PATH.fullmatch(path)) and is_task_id(match[1]):
            return partial(self._cancel, match[1])
        return None

    async def _create(
        self, context: ReplicaContext, scope: Scope, receive: Receive, send: Send
    ) -> None:
        understood, idempotency_key = idempotency_key_of(scope)
        if not (understood and is_json(scope)):
            await self.app(scope, receive, send)
            return
        try:
            body = await Request(scope, receive).body()
        except ClientDisconnect:
            return
        except HTTPException as exc:  # over the body limit (app.api.limits)
            await error_answer(exc)(scope, receive, send)
            return
        try:
            request = TaskCreate.model_validate(strict_json.loads(body))
        except (strict_json.JSONRefused, ValidationError):
            await self.app(scope, replaying(body, receive), send)  # the app's own 422
            return
        try:
            who = principal_of(scope)
            answer = await context.service.create(
                request,
                api_key_id=who.key_id,
                max_unfinished=who.max_unfinished,
                idempotency_key=idempotency_key,
            )
        except Exception as exc:
            await error_answer(exc)(scope, receive, send)
            return
        status, headers = create_answer_head(answer)
        await send_json(send, status, encoded(answer.task), headers)

    async def _get(
        self, task_id: str, context: ReplicaContext, scope: Scope, receive: Receive, send: Send
    ) -> None:
        try:
            task = await context.service.get(task_id, visible_to=principal_of(scope).task_scope)
        except Exception as exc:
            await error_answer(exc)(scope, receive, send)
            return
        await send_json(send, 200, encoded(task))

    async def _cancel(
        self, task_id: str, context: ReplicaContext, scope: Scope, receive: Receive, send: Send
    ) -> None:
        try:
            task = await cancel(task_id, context.service, context.watch, principal_of(scope))
        except Exception as exc:
            await error_answer(exc)(scope, receive, send)
            return
        await send_json(send, 202, encoded(task))
