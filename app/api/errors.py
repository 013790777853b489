"""Every error answer has one shape: {"error": {"code": ..., "message": ...}}."""

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

from app.errors import Saturated, TaskbeatError

log = logging.getLogger(__name__)
CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_response(
    status_code: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status_code, headers=headers)


def _describe(error: dict[str, object]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")  # type: ignore[attr-defined]
    return f"{where or 'body'}: {error.get('msg')}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TaskbeatError)
    async def on_taskbeat_error(_: Request, exc: TaskbeatError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, Saturated) else None
        return error_response(exc.status_code, exc.code, str(exc), headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        message = "; ".join(_describe(error) for error in exc.errors())
        return error_response(422, "invalid_request", message)

    @app.exception_handler(HTTPException)
    async def on_http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = CODES.get(exc.status_code, HTTPStatus(exc.status_code).phrase.lower())
        return error_response(exc.status_code, code.replace(" ", "_"), str(exc.detail))

    @app.exception_handler(SQLAlchemyError)
    async def on_store_error(_: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.warning("database error: %s", exc)
        return error_response(503, "store_unavailable", "the database is unavailable")

    @app.exception_handler(Exception)
    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "internal error")
