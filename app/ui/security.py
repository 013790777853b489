"""The dashboard's guards: a same-origin check on every action (sign-in and sign-out
too), and a Content Security Policy that lets the pages load nothing but this service's
own files.

Who may see the pages (a viewer or admin key) and act (an admin key) is the API's access
table (app.api.auth). A browser signs in at /ui/login with a key and then carries a session
cookie (app.service.sessions): HttpOnly, SameSite=Strict, Path=/ui, Secure when the
request came over TLS, and only ever accepted under /ui."""

from urllib.parse import urlsplit

from fastapi import Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain.errors import TaskbeatError
from app.domain.keys import Principal, Role

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


class CrossOrigin(TaskbeatError):
    code = "cross_origin"
    status_code = 403


def can_act(request: Request) -> bool:
    """Whether this caller may press buttons: an admin key (or auth off); a viewer sees none."""
    principal = request.scope.get("state", {}).get("principal")
    return isinstance(principal, Principal) and principal.role is Role.ADMIN


async def same_origin(request: Request) -> None:
    """Refuses an action sent from another site's page (a forged form post): the browser's
    Origin (else its Referer, else Sec-Fetch-Site) must name this very service. A plain
    form's post says `Origin: null` (the answers' Referrer-Policy is no-referrer), so then
    Sec-Fetch-Site, which no page's script can set, decides."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        origin = request.headers.get("referer")
    if origin is None:
        if request.headers.get("sec-fetch-site") == "same-origin":
            return
        raise CrossOrigin("an action needs the Origin header of this dashboard's own pages")
    # the host alone: behind a TLS-terminating proxy the scheme seen here is http
    if urlsplit(origin).netloc != request.headers.get("host", ""):
        shown = urlsplit(origin)._replace(path="", query="", fragment="").geturl()[:200]
        raise CrossOrigin(f"an action from {shown} is refused: only this dashboard's own pages")


class ContentSecurityPolicy:
    """Adds the CSP and framing refusal to every answer under `prefix`."""

    def __init__(self, app: ASGIApp, *, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return

        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = CSP
                headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, with_policy)
