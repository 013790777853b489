"""/docs (Swagger UI 5, vendored in app/ui/static/vendor/swagger) from the package, not from
a CDN: the API explorer works on a machine with no internet. (No /redoc: ReDoc's bundle
fetches its logo from its vendor's CDN.)"""

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_FILES = Path(__file__).parents[1] / "ui" / "static" / "vendor" / "swagger"
SWAGGER_PREFIX = "/docs/assets"


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
            swagger_ui_parameters={"validatorUrl": None},  # its badge calls a remote validator
        )
