"""The dashboard at /ui: server-rendered pages, vendored htmx, live parts over SSE."""

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.ui import actions, live, pages, signin
from app.ui.security import ContentSecurityPolicy
from app.ui.templating import HERE


def install_dashboard(app: FastAPI) -> None:
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.include_router(live.router)
    app.include_router(signin.router)
    app.include_router(actions.router)
    app.include_router(pages.router)
    app.add_middleware(ContentSecurityPolicy, prefix="/ui")
