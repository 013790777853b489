"""A small typed client of the taskbeat REST API, sync (`TaskbeatClient`) and async
(`AsyncTaskbeatClient`), over httpx.

    with TaskbeatClient("http://127.0.0.1:8000") as client:
        task = client.create("hello", {"duration_ms": 1000})
        task = client.wait(task.task_id, timeout_s=30)

Every error answer of the API raises `TaskbeatAPIError`; a server that cannot be reached
raises `TaskbeatConnectionError`.
"""

import builtins
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import anyio
import httpx

from app.domain.models import TaskPublic, TaskStatus

DEFAULT_URL = "http://127.0.0.1:8000"
# The longest single long-poll asked of the server; a longer wait is several of them.
LONG_POLL_S = 30.0
# A wait with less time left than this just reads the task.
MIN_WAIT_S = 0.001
# Added to a long-poll's own timeout so that the HTTP read does not give up first.
READ_MARGIN_S = 10.0


class TaskbeatError(Exception):
    """Base of the client's errors."""


class TaskbeatAPIError(TaskbeatError):
    """The API answered with an error envelope `{"error": {"code", "message"}}`."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message


class TaskbeatConnectionError(TaskbeatError):
    """The server could not be reached (refused, timed out, name not resolved)."""


@dataclass(frozen=True, slots=True)
class TaskPage:
    items: list[TaskPublic]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One event of `/v1/tasks/{id}/events`: its name, id and JSON data."""

    event: str
    data: dict[str, Any]
    id: str | None = None


@dataclass(slots=True)
class SSEParser:
    """Turns lines of a `text/event-stream` into events, as the WHATWG spec reads them."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _last_id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        """Takes one line (without its end of line); returns an event when one is complete."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, such as a keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._last_id = value
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event, data = self._event or "message", "\n".join(self._data)
        had_data = bool(self._data)
        self._event, self._data = "", []
        if not had_data:
            return None
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = {"text": data}
        if not isinstance(parsed, dict):
            parsed = {"value": parsed}
        return ServerSentEvent(event=event, data=parsed, id=self._last_id)


def parse_sse(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """The events in an iterable of lines."""
    parser = SSEParser()
    for line in lines:
        if (event := parser.feed(line)) is not None:
            yield event


def _raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.text.strip()[:200] or response.reason_phrase
    raise TaskbeatAPIError(response.status_code, code, message)


def _json(response: httpx.Response) -> Any:
    _raise_for_error(response)
    return response.json()


def _task(response: httpx.Response) -> TaskPublic:
    return TaskPublic.model_validate(_json(response))


def _page(response: httpx.Response) -> TaskPage:
    body = _json(response)
    items = [TaskPublic.model_validate(item) for item in body["items"]]
    return TaskPage(items=items, next_cursor=body.get("next_cursor"))


def _create_body(
    algorithm: str, input: dict[str, Any] | None, timeout_s: int | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"algorithm": algorithm, "input": input or {}}
    if timeout_s is not None:
        body["timeout_s"] = timeout_s
    return body


def _list_params(
    status: TaskStatus | str | None, algorithm: str | None, limit: int | None, cursor: str | None
) -> dict[str, str | int]:
    params = {"status": status, "algorithm": algorithm, "limit": limit, "cursor": cursor}
    return {key: str(value) for key, value in params.items() if value is not None}


def _connection_error(base_url: str, exc: httpx.TransportError) -> TaskbeatConnectionError:
    return TaskbeatConnectionError(f"cannot reach taskbeat at {base_url}: {exc or type(exc)}")


def _finished(task: TaskPublic) -> bool:
    return TaskStatus(task.status).finished


class TaskbeatClient:
    """Blocking client; use as a context manager or call `close()`."""

    def __init__(self, base_url: str = DEFAULT_URL, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise _connection_error(self.base_url, exc) from exc

    def create(
        self, algorithm: str, input: dict[str, Any] | None = None, timeout_s: int | None = None
    ) -> TaskPublic:
        """Creates a task; it runs at once (or when a slot frees) on the server."""
        body = _create_body(algorithm, input, timeout_s)
        return _task(self._request("POST", "/v1/tasks", json=body))

    def get(self, task_id: str) -> TaskPublic:
        return _task(self._request("GET", f"/v1/tasks/{task_id}"))

    def list(
        self,
        *,
        status: TaskStatus | str | None = None,
        algorithm: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> TaskPage:
        """One page of tasks, newest first."""
        params = _list_params(status, algorithm, limit, cursor)
        return _page(self._request("GET", "/v1/tasks", params=params))

    def iter_tasks(
        self,
        *,
        status: TaskStatus | str | None = None,
        algorithm: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[TaskPublic]:
        """Every task, newest first, fetching page after page."""
        cursor: str | None = None
        while True:
            page = self.list(status=status, algorithm=algorithm, limit=page_size, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def cancel(self, task_id: str) -> TaskPublic:
        return _task(self._request("POST", f"/v1/tasks/{task_id}/cancel"))

    def stats(self) -> dict[str, Any]:
        return dict(_json(self._request("GET", "/v1/stats")))

    def algorithms(self) -> builtins.list[dict[str, Any]]:
        return list(_json(self._request("GET", "/v1/algorithms"))["items"])

    def wait(self, task_id: str, timeout_s: float = 60.0) -> TaskPublic:
        """The task once finished, or as it is when `timeout_s` has passed: long-polls
        `/wait`, at most LONG_POLL_S per request."""
        deadline = time.monotonic() + timeout_s
        while (remaining_s := deadline - time.monotonic()) >= MIN_WAIT_S:
            poll_s = min(remaining_s, LONG_POLL_S)
            response = self._request(
                "GET",
                f"/v1/tasks/{task_id}/wait",
                params={"timeout_s": round(poll_s, 3)},
                timeout=poll_s + READ_MARGIN_S,
            )
            task = _task(response)
            if _finished(task):
                return task
        return self.get(task_id)

    def stream(self, task_id: str, *, timeout_s: float | None = None) -> Iterator[ServerSentEvent]:
        """The task's `status` and `progress` events until it finishes (the server then
        closes the stream) or `timeout_s` has passed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        parser = SSEParser()
        try:
            with self._http.stream(
                "GET",
                f"/v1/tasks/{task_id}/events",
                headers={"accept": "text/event-stream"},
                timeout=httpx.Timeout(10.0, read=timeout_s),
            ) as response:
                if not response.is_success:
                    response.read()
                    _raise_for_error(response)
                for line in response.iter_lines():
                    if (event := parser.feed(line)) is not None:
                        yield event
                    if deadline is not None and time.monotonic() >= deadline:
                        return
        except httpx.ReadTimeout:
            if deadline is None:
                raise
        except httpx.TransportError as exc:
            raise _connection_error(self.base_url, exc) from exc


class AsyncTaskbeatClient:
    """The same client for async code (asyncio or trio, through anyio)."""

    def __init__(self, base_url: str = DEFAULT_URL, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise _connection_error(self.base_url, exc) from exc

    async def create(
        self, algorithm: str, input: dict[str, Any] | None = None, timeout_s: int | None = None
    ) -> TaskPublic:
        """Creates a task; it runs at once (or when a slot frees) on the server."""
        body = _create_body(algorithm, input, timeout_s)
        return _task(await self._request("POST", "/v1/tasks", json=body))

    async def get(self, task_id: str) -> TaskPublic:
        return _task(await self._request("GET", f"/v1/tasks/{task_id}"))

    async def list(
        self,
        *,
        status: TaskStatus | str | None = None,
        algorithm: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> TaskPage:
        """One page of tasks, newest first."""
        params = _list_params(status, algorithm, limit, cursor)
        return _page(await self._request("GET", "/v1/tasks", params=params))

    async def iter_tasks(
        self,
        *,
        status: TaskStatus | str | None = None,
        algorithm: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[TaskPublic]:
        """Every task, newest first, fetching page after page."""
        cursor: str | None = None
        while True:
            page = await self.list(
                status=status, algorithm=algorithm, limit=page_size, cursor=cursor
            )
            for task in page.items:
                yield task
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def cancel(self, task_id: str) -> TaskPublic:
        return _task(await self._request("POST", f"/v1/tasks/{task_id}/cancel"))

    async def stats(self) -> dict[str, Any]:
        return dict(_json(await self._request("GET", "/v1/stats")))

    async def algorithms(self) -> builtins.list[dict[str, Any]]:
        return list(_json(await self._request("GET", "/v1/algorithms"))["items"])

    async def wait(self, task_id: str, timeout_s: float = 60.0) -> TaskPublic:
        """The task once finished, or as it is when `timeout_s` has passed: long-polls
        `/wait`, at most LONG_POLL_S per request."""
        deadline = time.monotonic() + timeout_s
        while (remaining_s := deadline - time.monotonic()) >= MIN_WAIT_S:
            poll_s = min(remaining_s, LONG_POLL_S)
            response = await self._request(
                "GET",
                f"/v1/tasks/{task_id}/wait",
                params={"timeout_s": round(poll_s, 3)},
                timeout=poll_s + READ_MARGIN_S,
            )
            task = _task(response)
            if _finished(task):
                return task
        return await self.get(task_id)

    async def stream(
        self, task_id: str, *, timeout_s: float | None = None
    ) -> AsyncIterator[ServerSentEvent]:
        """The task's `status` and `progress` events until it finishes (the server then
        closes the stream) or `timeout_s` has passed."""
        deadline = None if timeout_s is None else anyio.current_time() + timeout_s
        parser = SSEParser()
        try:
            async with self._http.stream(
                "GET",
                f"/v1/tasks/{task_id}/events",
                headers={"accept": "text/event-stream"},
                timeout=httpx.Timeout(10.0, read=timeout_s),
            ) as response:
                if not response.is_success:
                    await response.aread()
                    _raise_for_error(response)
                async for line in response.aiter_lines():
                    if (event := parser.feed(line)) is not None:
                        yield event
                    if deadline is not None and anyio.current_time() >= deadline:
                        return
        except httpx.ReadTimeout:
            if deadline is None:
                raise
        except httpx.TransportError as exc:
            raise _connection_error(self.base_url, exc) from exc
