"""Who may call what: every route's access rule, in one table, enforced for every request
before it reaches the route (a route without a rule is refused, never open).

The rule of a route is looked up by its method and path template as the app's router
matches them, so a route added later, by any router or mount, is covered by this layer
and fails the route-table test until it has a rule here.
"""

import enum
import logging
import math
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import cookie_parser
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import error_response
from app.domain.errors import (
    Forbidden,
    LimitExceeded,
    NotAuthenticated,
    StoreUnavailable,
    TaskbeatError,
)
from app.domain.keys import ANONYMOUS, Principal, Role
from app.service.sessions import SESSION_COOKIE

log = logging.getLogger(__name__)


class Access(enum.Enum):
    OPEN = "no key: load balancers' probes, the API's documentation, the dashboard's sign-in"
    SIGNED = "no key: the route checks its own HMAC signature (engine callbacks)"
    READ = "any key (a client key sees only its own tasks)"
    WRITE = "a client or admin key (a client acts on its own tasks only)"
    STAFF = "a viewer or admin key"
    METRICS = "a viewer or admin key, or none with TASKBEAT_METRICS_PUBLIC=true"
    ADMIN = "an admin key"


ROLES: dict[Access, frozenset[Role]] = {
    Access.READ: frozenset(Role),
    Access.WRITE: frozenset({Role.CLIENT, Role.ADMIN}),
    Access.STAFF: frozenset({Role.VIEWER, Role.ADMIN}),
    Access.METRICS: frozenset({Role.VIEWER, Role.ADMIN}),
    Access.ADMIN: frozenset({Role.ADMIN}),
}
KEYLESS = frozenset({Access.OPEN, Access.SIGNED})
TASK = "/v1/tasks/{task_id}"
ALGORITHM = "/v1/algorithms/{name}"
SCHEDULE = "/v1/schedules/{name}"
DASHBOARD = "/ui"
SIGN_IN = "/ui/login"
UI_ALGORITHM = "/ui/algorithms/{name}"
UI_SCHEDULE = "/ui/schedules/{name}"

# (method, path template) -> rule; HEAD follows GET. Every route must be here.
RULES: dict[tuple[str, str], Access] = {
    ("GET", "/healthz"): Access.OPEN,
    ("GET", "/readyz"): Access.OPEN,
    ("GET", "/openapi.json"): Access.OPEN,
    ("GET", "/docs"): Access.OPEN,
    ("GET", "/docs/oauth2-redirect"): Access.OPEN,
    ("GET", "/redoc"): Access.OPEN,
    ("GET", "/metrics"): Access.METRICS,
    ("POST", f"{TASK}/callback"): Access.SIGNED,
    ("POST", "/v1/tasks"): Access.WRITE,
    ("GET", "/v1/tasks"): Access.READ,
    ("GET", TASK): Access.READ,
    ("DELETE", TASK): Access.WRITE,
    ("POST", f"{TASK}/cancel"): Access.WRITE,
    ("POST", f"{TASK}/retry"): Access.WRITE,
    ("GET", f"{TASK}/wait"): Access.READ,
    ("GET", f"{TASK}/events"): Access.READ,
    ("GET", f"{TASK}/attempts"): Access.READ,
    ("POST", "/v1/bulk/cancel"): Access.WRITE,
    ("POST", "/v1/bulk/retry"): Access.WRITE,
    ("GET", "/v1/stats"): Access.READ,
    ("GET", "/v1/algorithms"): Access.READ,
    ("GET", ALGORITHM): Access.READ,
    ("PATCH", ALGORITHM): Access.ADMIN,
    ("POST", f"{ALGORITHM}/pause"): Access.ADMIN,
    ("POST", f"{ALGORITHM}/resume"): Access.ADMIN,
    ("GET", "/v1/schedules"): Access.STAFF,
    ("POST", "/v1/schedules"): Access.ADMIN,
    ("GET", SCHEDULE): Access.STAFF,
    ("PATCH", SCHEDULE): Access.ADMIN,
    ("DELETE", SCHEDULE): Access.ADMIN,
    ("POST", f"{SCHEDULE}/pause"): Access.ADMIN,
    ("POST", f"{SCHEDULE}/resume"): Access.ADMIN,
    ("GET", "/v1/keys"): Access.ADMIN,
    ("POST", "/v1/keys"): Access.ADMIN,
    ("DELETE", "/v1/keys/{key_id}"): Access.ADMIN,
    # the dashboard: its sign-in is open (it checks the key it is given), its actions admin
    ("GET", SIGN_IN): Access.OPEN,
    ("POST", SIGN_IN): Access.OPEN,
    ("POST", "/ui/logout"): Access.OPEN,
    ("POST", "/ui/tasks/{task_id}/cancel"): Access.ADMIN,
    ("POST", "/ui/tasks/{task_id}/retry"): Access.ADMIN,
    ("POST", "/ui/bulk/cancel"): Access.ADMIN,
    ("POST", "/ui/bulk/retry"): Access.ADMIN,
    ("POST", UI_ALGORITHM): Access.ADMIN,
    ("POST", f"{UI_ALGORITHM}/pause"): Access.ADMIN,
    ("POST", f"{UI_ALGORITHM}/resume"): Access.ADMIN,
    ("POST", f"{UI_SCHEDULE}/pause"): Access.ADMIN,
    ("POST", f"{UI_SCHEDULE}/resume"): Access.ADMIN,
}
# Path prefixes whose every route and method has one rule (the profiler's endpoints, the
# dashboard's pages and the static files of the dashboard and /docs), first match wins.
PREFIX_RULES: dict[str, Access] = {
    "/debug": Access.ADMIN,
    "/ui/static": Access.OPEN,
    "/docs/assets": Access.OPEN,
    "/ui": Access.STAFF,
}


def rule_of(method: str, path: str) -> Access | None:
    method = "GET" if method == "HEAD" else method
    if (method, path) in RULES:
        return RULES[(method, path)]
    for prefix, access in PREFIX_RULES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return access
    return None


def route_table(routes: Iterable[BaseRoute]) -> Iterator[Any]:
    """Every route the app serves, with its full path: the routes of included routers
    one by one (each with `path`, `methods` and `matches`)."""
    for route in routes:
        if hasattr(route, "effective_route_contexts"):  # a FastAPI router included
            yield from route.effective_route_contexts()
        else:
            yield route


def matched_route(routes: Iterable[BaseRoute], scope: Scope) -> Any:
    """The route the router will run for this request (None: it answers 404 or 405)."""
    for route in route_table(routes):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


def bearer_secret(scope: Scope) -> str | None:
    """The token of `Authorization: Bearer <token>`; "" for any other Authorization."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


def is_dashboard(path: str) -> bool:
    return path == DASHBOARD or path.startswith(DASHBOARD + "/")


def header_of(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def session_token(scope: Scope) -> str | None:
    """The dashboard's session cookie (sent by the browser under /ui only)."""
    cookies = cookie_parser(header_of(scope, b"cookie") or "")
    return cookies.get(SESSION_COOKIE) or None


def sign_in_answer(scope: Scope, exc: NotAuthenticated) -> Response:
    """401 with the usual envelope; a browser opening a dashboard page is sent to sign in
    instead (htmx, refreshing a part of a page, is told to go there)."""
    path = scope["path"]
    if is_dashboard(path) and header_of(scope, b"authorization") is None:
        query = scope.get("query_string", b"").decode("latin-1")
        back = quote(f"{path}?{query}" if query else path, safe="")
        sign_in = f"{SIGN_IN}?next={back}"
        if header_of(scope, b"hx-request"):
            return error_response(
                exc.status_code, exc.code, str(exc), {**exc.headers, "HX-Redirect": sign_in}
            )
        accepts = header_of(scope, b"accept") or ""
        if scope["method"] in ("GET", "HEAD") and "text/html" in accepts:
            return RedirectResponse(sign_in, status_code=303)
    return error_response(exc.status_code, exc.code, str(exc), exc.headers or None)


def principal_of(scope: Scope) -> Principal:
    """The principal the auth layer found for this request."""
    principal = scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise Forbidden("no access rule let this request through")
    return principal


def allow(principal: Principal, access: Access) -> None:
    if access not in KEYLESS and principal.role not in ROLES[access]:
        raise Forbidden(f"a {principal.role.value} key may not do this: it needs {access.value}")


class Authorization:
    """The ASGI layer that authenticates the bearer key, checks the route's rule and the
    key's request rate, and leaves the principal in the request's state."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._principal(scope)
        except NotAuthenticated as exc:
            await sign_in_answer(scope, exc)(scope, receive, send)
            return
        except TaskbeatError as exc:
            answer = error_response(exc.status_code, exc.code, str(exc), exc.headers or None)
            await answer(scope, receive, send)
            return
        except (SQLAlchemyError, OSError) as exc:
            log.warning("keys unavailable: %s", exc)
            answer = error_response(503, "store_unavailable", "the database is unavailable")
            await answer(scope, receive, send)
            return
        if principal is not None:
            scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _principal(self, scope: Scope) -> Principal | None:
        app: Any = scope["app"]
        route = matched_route(app.router.routes, scope)
        if route is None:
            return None  # the router answers 404 or 405
        scope["route"] = route  # as the router would: app.api.hot_routes may answer instead
        path = getattr(route, "path", "")
        access = rule_of(scope["method"], path)
        if access is None:
            log.error("no access rule for %s %s: refused", scope["method"], path)
            raise Forbidden(f"no access rule for {scope['method']} {path}")
        context = getattr(app.state, "context", None)
        if access in KEYLESS:
            return None
        if context is None:
            raise StoreUnavailable("the service is starting")
        if access is Access.METRICS and context.settings.metrics_public:
            return None
        if not await context.keys.required():
            return ANONYMOUS
        secret = bearer_secret(scope)
        token = session_token(scope) if secret is None and is_dashboard(path) else None
        principal: Principal = await (
            context.keys.authenticate(secret)
            if token is None
            else context.sessions.principal_of(token)
        )
        allow(principal, access)
        if principal.key_id is not None and principal.rate_per_s is not None:
            wait_s = await context.rate.over_limit(principal.key_id, principal.rate_per_s)
            if wait_s is not None:
                raise LimitExceeded(
                    f"over {principal.rate_per_s} requests per second for this key",
                    retry_after_s=max(1, math.ceil(wait_s)),
                )
        return principal


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        answer["headers"] = headers
    return answer


def document_security(document: dict[str, Any]) -> None:
    """Declares the bearer scheme, and on every route that needs a key its 401, 403 and
    429 answers."""
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key: `Authorization: Bearer tb_...`",
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            access = rule_of(method.upper(), path)
            if access is None or access in KEYLESS:
                continue
            operation["security"] = [{"bearer": []}]
            responses = operation["responses"]
            responses["401"] = _error(
                "missing, malformed, unknown, revoked or expired API key",
                {"WWW-Authenticate": {"schema": {"type": "string"}}},
            )
            if ROLES[access] != frozenset(Role):
                responses["403"] = _error(f"the key's role may not do this ({access.value})")
            responses["429"] = _error(
                "the key is over its requests per second (or, creating, its unfinished "
                "tasks), or the replica's backlog is full: retry after Retry-After seconds",
                {"Retry-After": {"schema": {"type": "integer"}}},
            )
