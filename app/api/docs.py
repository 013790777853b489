"""/docs (Swagger UI) and /redoc from files shipped in the installed packages, not from a
CDN: the API explorer works on a machine with no internet."""

from pathlib import Path

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_FILES = Path(swagger_ui_bundle.swagger_ui_path)
SWAGGER_PREFIX = "/docs/assets"
REDOC_JS = "/ui/static/vendor/redoc.standalone.js"


def install_docs(app: FastAPI) -> None:
    """For an app made with docs_url=None and redoc_url=None."""
    app.mount(SWAGGER_PREFIX, StaticFiles(directory=SWAGGER_FILES), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{SWAGGER_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_PREFIX}/favicon-32x32.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            redoc_js_url=REDOC_JS,
            redoc_favicon_url=f"{SWAGGER_PREFIX}/favicon-32x32.png",
            with_google_fonts=False,
        )
