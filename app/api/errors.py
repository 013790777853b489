"""Every error answer has one shape: {"error": {"code": ..., "message": ...}}, described once
in the OpenAPI document (`Error`) and listed, status by status, on every route."""

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from app.domain.errors import InvalidCursor, TaskbeatError

log = logging.getLogger(__name__)
CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
WHEN = {
    204: "the client has seen the final event",
    401: "missing, malformed, stale, replayed or wrong signature, or callbacks disabled",
    404: "no such task",
    409: "the task is in a state that does not allow it (schedules: the name is taken)",
    413: "request body over TASKBEAT_MAX_BODY_BYTES",
    422: "a bad body, header, path or query value",
    429: "the replica's backlog is full: retry after Retry-After seconds",
    503: "the database or Redis is unavailable",
}


class ErrorDetail(BaseModel):
    code: str
    message: str


class Error(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with the shared Error schema."""
    answers: dict[int | str, dict[str, Any]] = {}
    for status in (*statuses, 413):
        answer: dict[str, Any] = {"model": Error, "description": WHEN[status]}
        if status == 429:
            answer["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        if status == 401:
            answer["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        answers[status] = answer
    return answers


def error_response(
    status_code: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status_code, headers=headers)


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    if error.get("type") == "json_invalid":  # the body parser's own words say what was wrong
        return f"body: {error.get('ctx', {}).get('error', 'not valid JSON')}"
    return f"{where or 'body'}: {error.get('msg')}"


def _allowed_methods(request: Request) -> str:
    """Every method some route answers at this path: the router names only the first
    route's, and RFC 9110 wants all the resource's."""
    allowed = []
    bare = {key: request.scope[key] for key in ("type", "path", "root_path", "headers")}
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**bare, "method": method}  # a fresh scope: routing caches its match in it
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TaskbeatError)
    async def on_taskbeat_error(_: Request, exc: TaskbeatError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, str(exc), exc.headers or None)

    @app.exception_handler(InvalidCursor)
    async def on_invalid_cursor(_: Request, exc: InvalidCursor) -> JSONResponse:
        return error_response(422, "invalid_request", f"cursor: {exc}")

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        message = "; ".join(_describe(error) for error in exc.errors())
        return error_response(422, "invalid_request", message)

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = CODES.get(exc.status_code, HTTPStatus(exc.status_code).phrase.lower())
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return error_response(exc.status_code, code.replace(" ", "_"), str(exc.detail), headers)

    @app.exception_handler(SQLAlchemyError)
    async def on_store_error(_: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.warning("database error: %s", exc)
        return error_response(503, "store_unavailable", "the database is unavailable")

    @app.exception_handler(Exception)
    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "internal error")
