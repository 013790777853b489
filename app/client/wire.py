"""What goes over the wire, written once for both clients: request bodies and parameters,
and responses and stream events turned into models or errors."""

import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from httpx_sse import ServerSentEvent

from app.client.errors import TaskbeatAPIError, TaskbeatConnectionError
from app.domain.models import TaskPage, TaskPublic, TaskStatus

DEFAULT_URL = "http://127.0.0.1:8000"
# The longest single long-poll asked of the server; a longer wait is several of them.
LONG_POLL_S = 30.0
# A wait with less time left than this just reads the task.
MIN_WAIT_S = 0.001
# Added to a long-poll's own timeout so that the HTTP read does not give up first.
READ_MARGIN_S = 10.0
# Connecting to an event stream; reading it waits as long as the caller's timeout_s.
STREAM_CONNECT_S = 10.0


@dataclass(frozen=True, slots=True)
class TaskStreamEvent:
    """One event of `/v1/tasks/{id}/events`: its name (`status`, `progress`), id and data."""

    event: str
    data: dict[str, Any]
    id: str | None = None


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The Authorization header of a key (`api_key`, else TASKBEAT_API_KEY; none if unset)."""
    key = api_key or os.environ.get("TASKBEAT_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.text.strip()[:200] or response.reason_phrase
    raise TaskbeatAPIError(response.status_code, code, message)


def parse_json(response: httpx.Response) -> Any:
    raise_for_error(response)
    return response.json()


def parse_task(response: httpx.Response) -> TaskPublic:
    return TaskPublic.model_validate(parse_json(response))


def parse_page(response: httpx.Response) -> TaskPage:
    return TaskPage.model_validate(parse_json(response))


def create_body(
    algorithm: str,
    input: dict[str, Any] | None,
    timeout_s: int | None,
    run_at: datetime | str | None = None,
    delay_s: float | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"algorithm": algorithm, "input": input or {}}
    if timeout_s is not None:
        body["timeout_s"] = timeout_s
    if run_at is not None:
        body["run_at"] = run_at.isoformat() if isinstance(run_at, datetime) else run_at
    if delay_s is not None:
        body["delay_s"] = delay_s
    return body


def idempotency_headers(idempotency_key: str | None) -> dict[str, str]:
    return {} if idempotency_key is None else {"Idempotency-Key": idempotency_key}


def bulk_filter(
    algorithm: str | None,
    status: TaskStatus | str | None,
    created_before: datetime | str | None,
    schedule: str | None = None,
) -> dict[str, str]:
    """The body of a bulk action: only the fields given."""
    if isinstance(created_before, datetime):
        created_before = created_before.isoformat()
    fields = {
        "algorithm": algorithm,
        "status": status,
        "created_before": created_before,
        "schedule": schedule,
    }
    return {name: str(value) for name, value in fields.items() if value is not None}


def list_params(
    status: TaskStatus | str | None,
    algorithm: str | None,
    limit: int | None,
    cursor: str | None,
    schedule: str | None = None,
) -> dict[str, str]:
    params = {
        "status": status,
        "algorithm": algorithm,
        "schedule": schedule,
        "limit": limit,
        "cursor": cursor,
    }
    return {key: str(value) for key, value in params.items() if value is not None}


def wait_request(poll_s: float) -> dict[str, Any]:
    """The keyword arguments of one long-poll of `/wait` lasting at most `poll_s`."""
    return {"params": {"timeout_s": round(poll_s, 3)}, "timeout": poll_s + READ_MARGIN_S}


def stream_timeout(timeout_s: float | None) -> httpx.Timeout:
    return httpx.Timeout(STREAM_CONNECT_S, read=timeout_s)


def is_finished(task: TaskPublic) -> bool:
    return TaskStatus(task.status).finished


def connection_error(base_url: str, exc: httpx.TransportError) -> TaskbeatConnectionError:
    return TaskbeatConnectionError(f"cannot reach taskbeat at {base_url}: {exc or type(exc)}")


def stream_event(sse: ServerSentEvent) -> TaskStreamEvent | None:
    """The task event in a decoded SSE frame; None for a frame without data (httpx-sse
    dispatches one for the blank line after a keep-alive comment once an id was seen)."""
    data = sse.data
    if not data:
        return None
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = {"text": data}
    if not isinstance(parsed, dict):
        parsed = {"value": parsed}
    return TaskStreamEvent(event=sse.event, data=parsed, id=sse.id or None)
