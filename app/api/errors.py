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


def error_answer(exc: Exception) -> JSONResponse:
    """The answer to an exception a route raised: the handlers below, and the hot routes
    (app.api.hot_routes), which answer without the app's exception middleware."""
    if isinstance(exc, TaskbeatError):
        return error_response(exc.status_code, exc.code, str(exc), exc.headers or None)
    if isinstance(exc, InvalidCursor):
        return error_response(422, "invalid_request", f"cursor: {exc}")
    if isinstance(exc, HTTPException):
        code = CODES.get(exc.status_code, HTTPStatus(exc.status_code).phrase.lower())
        return error_response(
            exc.status_code, code.replace(" ", "_"), str(exc.detail), dict(exc.headers or {})
        )
    if isinstance(exc, SQLAlchemyError):
        log.warning("database error: %s", exc)
        return error_response(503, "store_unavailable", "the database is unavailable")
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    async def on_error(_: Request, exc: Exception) -> JSONResponse:
        return error_answer(exc)

    for kind in (TaskbeatError, InvalidCursor, SQLAlchemyError, Exception):
        app.add_exception_handler(kind, on_error)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        message = "; ".join(_describe(error) for error in exc.errors())
        return error_response(422, "invalid_request", message)

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
        answer = error_answer(exc)
        if exc.status_code == 405:
            answer.headers["Allow"] = _allowed_methods(request)
        return answer
