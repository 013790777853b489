"""The dashboard at /ui: server-rendered pages, vendored htmx, live parts over SSE."""

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.ui import actions, live, pages, signin
from app.ui.security import ContentSecurityPolicy
from app.ui.templating import HERE


def guard_dashboard(app: FastAPI) -> None:
    """The dashboard's Content Security Policy, on every answer under /ui."""
    app.add_middleware(ContentSecurityPolicy, prefix="/ui")


def install_dashboard(app: FastAPI) -> None:
    """The pages and their files (after the API's routes: the router tries routes in order,
    and the API's are the ones asked for most)."""
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.include_router(live.router)
    app.include_router(signin.router)
    app.include_router(actions.router)
    app.include_router(pages.router)
