"""Signing in to the dashboard with an API key, and out. The key is sent once, in the
sign-in form; the browser then carries a session cookie that holds no secret."""

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from app.domain.errors import NotAuthenticated
from app.domain.keys import Role
from app.service.sessions import COOKIE_PATH, SESSION_COOKIE
from app.ui.deps import ContextDep, field_of, form_of
from app.ui.pages import render
from app.ui.security import same_origin

log = logging.getLogger(__name__)
router = APIRouter(prefix="/ui", include_in_schema=False)
SameOrigin = Annotated[None, Depends(same_origin)]
HOME = "/ui/overview"
# a page of this dashboard, and nothing that a browser could read as another host
BACK_TO = re.compile(r"^/ui(/[A-Za-z0-9._~%/-]*)?(\?[^\x00-\x20\\]*)?$")
CLIENT_REFUSED = "a client key cannot open the dashboard: sign in with a viewer or admin key"


def back_to(wanted: str) -> str:
    """Where to go after signing in: the page asked for, if it is one of ours."""
    if BACK_TO.fullmatch(wanted) and not wanted.startswith(("//", "/ui/login")):
        return wanted
    return HOME


def _over_tls(request: Request) -> bool:
    # uvicorn sets the scheme from X-Forwarded-Proto for the proxies FORWARDED_ALLOW_IPS trusts
    return request.url.scheme == "https"


@router.get("/login")
async def sign_in_page(
    request: Request,
    context: ContextDep,
    next_page: Annotated[str, Query(alias="next", max_length=2000)] = "",
) -> Response:
    if not await context.keys.required():
        return RedirectResponse(back_to(next_page), status_code=303)
    return render(request, "login.html", "login", next_page=back_to(next_page), error=None)


@router.post("/login")
async def sign_in(request: Request, _: SameOrigin, context: ContextDep) -> Response:
    """Trades the key in the form for a session cookie, then goes back to the page asked."""
    form = await form_of(request)
    next_page = back_to(field_of(form, "next"))
    if not await context.keys.required():
        return RedirectResponse(next_page, status_code=303)
    secret = field_of(form, "key").strip()
    try:
        principal, session = await context.sessions.sign_in(secret or None)
    except NotAuthenticated as exc:
        return _refused(request, next_page, str(exc), 401)
    if principal.role is Role.CLIENT:
        return _refused(request, next_page, CLIENT_REFUSED, 403)
    log.info("audit: key %s signed in to the dashboard", principal.key_id)
    answer = RedirectResponse(next_page, status_code=303)
    answer.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=session.max_age_s,
        path=COOKIE_PATH,
        secure=_over_tls(request),
        httponly=True,
        samesite="strict",
    )
    return answer


def _refused(request: Request, next_page: str, error: str, status_code: int) -> Response:
    page = render(request, "login.html", "login", next_page=next_page, error=error)
    page.status_code = status_code
    return page


@router.post("/logout")
async def sign_out(request: Request, _: SameOrigin) -> Response:
    """Forgets the session cookie (the key itself stays in force)."""
    answer = RedirectResponse("/ui/login", status_code=303)
    answer.delete_cookie(
        SESSION_COOKIE,
        path=COOKIE_PATH,
        secure=_over_tls(request),
        httponly=True,
        samesite="strict",
    )
    return answer
