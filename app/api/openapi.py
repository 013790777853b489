"""The OpenAPI document, with what FastAPI cannot infer: the callback's body (read raw, as
it is signed) and the error schema in place of FastAPI's unused validation-error ones."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.auth import document_security
from app.service.callbacks import CallbackReport


def _drop_default_422(responses: dict[str, Any]) -> None:
    """FastAPI adds a 422 to every route with parameters; the routes that can answer 422
    declare theirs (with the Error schema), so the added ones are not true."""
    answer = responses.get("422", {})
    schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
    if schema.get("$ref", "").endswith("/HTTPValidationError"):
        del responses["422"]


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas["CallbackReport"] = CallbackReport.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            for operations in document["paths"].values():
                for operation in operations.values():
                    _drop_default_422(operation["responses"])
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            document_security(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
