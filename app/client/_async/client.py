"""The client class, written once: this file (app/client/_async) is the async one, and
app/client/_sync is generated from it by unasync (`make sync-client`; `make lint` checks).

Each call builds its request and reads its answer with app.client.wire; only the I/O is here.
"""

import builtins
import time
from collections.abc import AsyncIterator
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx
from httpx_sse import aconnect_sse

from app.client import wire
from app.client.wire import DEFAULT_URL, LONG_POLL_S, MIN_WAIT_S, TaskStreamEvent
from app.domain.models import TaskPage, TaskPublic, TaskStatus


class AsyncTaskbeatClient:
    """A client of one taskbeat service; use it as a context manager, or close it."""

    def __init__(
        self, base_url: str = DEFAULT_URL, *, timeout_s: float = 10.0, api_key: str | None = None
    ) -> None:
        """`api_key` (default TASKBEAT_API_KEY) goes with every request as a bearer token."""
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout_s, headers=wire.auth_headers(api_key)
        )

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
            raise wire.connection_error(self.base_url, exc) from exc

    async def create(
        self,
        algorithm: str,
        input: dict[str, Any] | None = None,
        timeout_s: int | None = None,
        *,
        run_at: datetime | str | None = None,
        delay_s: float | None = None,
        idempotency_key: str | None = None,
    ) -> TaskPublic:
        """Creates a task; it runs at once (or when a slot frees) on the server, or not
        before `run_at` (an aware datetime or ISO-8601 text) or `delay_s` seconds from now.
        With `idempotency_key`, a repeat of the same create answers the first task."""
        body = wire.create_body(algorithm, input, timeout_s, run_at, delay_s)
        headers = wire.idempotency_headers(idempotency_key)
        return wire.parse_task(await self._request("POST", "/v1/tasks", json=body, headers=headers))

    async def get(self, task_id: str) -> TaskPublic:
        return wire.parse_task(await self._request("GET", f"/v1/tasks/{task_id}"))

    async def list(
        self,
        *,
        status: TaskStatus | str | None = None,
        algorithm: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        schedule: str | None = None,
    ) -> TaskPage:
        """One page of tasks, newest first (`schedule`: only the tasks it made)."""
        params = wire.list_params(status, algorithm, limit, cursor, schedule)
        return wire.parse_page(await self._request("GET", "/v1/tasks", params=params))

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
        return wire.parse_task(await self._request("POST", f"/v1/tasks/{task_id}/cancel"))

    async def delete(self, task_id: str) -> None:
        """Deletes a finished task (TaskbeatAPIError 409 while it is unfinished)."""
        wire.raise_for_error(await self._request("DELETE", f"/v1/tasks/{task_id}"))

    async def retry(self, task_id: str) -> TaskPublic:
        """Runs a failed, cancelled or timed-out task again, as its next attempt."""
        return wire.parse_task(await self._request("POST", f"/v1/tasks/{task_id}/retry"))

    async def bulk_cancel(
        self,
        *,
        algorithm: str | None = None,
        status: TaskStatus | str | None = None,
        created_before: datetime | str | None = None,
        schedule: str | None = None,
    ) -> dict[str, int]:
        """Cancels every unfinished task the filter matches: {"matched", "changed"}."""
        body = wire.bulk_filter(algorithm, status, created_before, schedule)
        return dict(wire.parse_json(await self._request("POST", "/v1/bulk/cancel", json=body)))

    async def bulk_retry(
        self,
        *,
        algorithm: str | None = None,
        status: TaskStatus | str | None = None,
        created_before: datetime | str | None = None,
        schedule: str | None = None,
    ) -> dict[str, int]:
        """Runs every failed, cancelled or timed-out task the filter matches again."""
        body = wire.bulk_filter(algorithm, status, created_before, schedule)
        return dict(wire.parse_json(await self._request("POST", "/v1/bulk/retry", json=body)))

    async def stats(self) -> dict[str, Any]:
        return dict(wire.parse_json(await self._request("GET", "/v1/stats")))

    async def algorithms(self) -> builtins.list[dict[str, Any]]:
        return list(wire.parse_json(await self._request("GET", "/v1/algorithms"))["items"])

    async def algorithm(self, name: str) -> dict[str, Any]:
        """One algorithm's policy in force, with `running` and `waiting` over the cluster."""
        return dict(wire.parse_json(await self._request("GET", f"/v1/algorithms/{name}")))

    async def change_algorithm(self, name: str, **fields: Any) -> dict[str, Any]:
        """Changes policy fields on every replica; a None value goes back to its default."""
        response = await self._request("PATCH", f"/v1/algorithms/{name}", json=fields)
        return dict(wire.parse_json(response))

    async def pause(self, name: str, for_s: float | None = None) -> dict[str, Any]:
        body = {} if for_s is None else {"for_s": for_s}
        response = await self._request("POST", f"/v1/algorithms/{name}/pause", json=body)
        return dict(wire.parse_json(response))

    async def resume(self, name: str) -> dict[str, Any]:
        return dict(wire.parse_json(await self._request("POST", f"/v1/algorithms/{name}/resume")))

    async def schedules(self) -> builtins.list[dict[str, Any]]:
        return list(wire.parse_json(await self._request("GET", "/v1/schedules"))["items"])

    async def schedule(self, name: str) -> dict[str, Any]:
        """One schedule, with `next_fire_at` and `recent_tasks`."""
        return dict(wire.parse_json(await self._request("GET", f"/v1/schedules/{name}")))

    async def create_schedule(
        self, name: str, algorithm: str, cron: str, **fields: Any
    ) -> dict[str, Any]:
        """A new schedule; `fields` are any of input, timezone, overlap, catchup_s, paused,
        priority."""
        body = {"name": name, "algorithm": algorithm, "cron": cron, **fields}
        return dict(wire.parse_json(await self._request("POST", "/v1/schedules", json=body)))

    async def change_schedule(self, name: str, **fields: Any) -> dict[str, Any]:
        response = await self._request("PATCH", f"/v1/schedules/{name}", json=fields)
        return dict(wire.parse_json(response))

    async def delete_schedule(self, name: str) -> None:
        wire.raise_for_error(await self._request("DELETE", f"/v1/schedules/{name}"))

    async def pause_schedule(self, name: str) -> dict[str, Any]:
        response = await self._request("POST", f"/v1/schedules/{name}/pause")
        return dict(wire.parse_json(response))

    async def resume_schedule(self, name: str) -> dict[str, Any]:
        response = await self._request("POST", f"/v1/schedules/{name}/resume")
        return dict(wire.parse_json(response))

    async def attempts(self, task_id: str) -> builtins.list[dict[str, Any]]:
        """Every run of the task: attempt, status, error, replica, started_at, finished_at."""
        response = await self._request("GET", f"/v1/tasks/{task_id}/attempts")
        return list(wire.parse_json(response)["items"])

    async def wait(self, task_id: str, timeout_s: float = 60.0) -> TaskPublic:
        """The task once finished, or as it is when `timeout_s` has passed: long-polls
        `/wait`, at most LONG_POLL_S per request."""
        deadline = time.monotonic() + timeout_s
        while (remaining_s := deadline - time.monotonic()) >= MIN_WAIT_S:
            poll = wire.wait_request(min(remaining_s, LONG_POLL_S))
            task = wire.parse_task(await self._request("GET", f"/v1/tasks/{task_id}/wait", **poll))
            if wire.is_finished(task):
                return task
        return await self.get(task_id)

    async def stream(
        self, task_id: str, *, timeout_s: float | None = None
    ) -> AsyncIterator[TaskStreamEvent]:
        """The task's `status` and `progress` events until it finishes (the server then
        closes the stream) or `timeout_s` has passed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        path, timeout = f"/v1/tasks/{task_id}/events", wire.stream_timeout(timeout_s)
        try:
            async with aconnect_sse(self._http, "GET", path, timeout=timeout) as source:
                if not source.response.is_success:
                    await source.response.aread()
                    wire.raise_for_error(source.response)
                async for sse in source.aiter_sse():
                    if (event := wire.stream_event(sse)) is not None:
                        yield event
                    if deadline is not None and time.monotonic() >= deadline:
                        return
        except httpx.ReadTimeout:
            if deadline is None:
                raise
        except httpx.TransportError as exc:
            raise wire.connection_error(self.base_url, exc) from exc
