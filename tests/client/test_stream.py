"""Both clients' `stream()` read the event-stream format as browsers do (httpx-sse), over a
real HTTP stream whose frames the test writes byte for byte."""

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from servers import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.client import (
    AsyncTaskbeatClient,
    TaskbeatAPIError,
    TaskbeatClient,
    TaskStreamEvent,
)

pytestmark = pytest.mark.anyio

# Chunks as a server may cut them: frames split mid-line, CRLF and LF line ends, comments.
AWKWARD_STREAM = [
    b": keep-alive\n\n",
    b'id: 7\nevent: progress\ndata: {"progr',
    b'ess":\ndata:  40}\n\n',
    b": keep-alive\n\n",  # after an id: a blank line that must not become an event
    b"data: not json\r\n\r\n",
    b"event: status\ndata: [1]\n\nid: a\0b\n",
    b"event: status\ndata: {}\n\n",
    # Only CR and LF end lines: U+2028 and U+0085 inside the data are text.
    'event: status\ndata: {"error": "a\u2028b\u0085c"}\n\n'.encode(),
    b"event: dropped at the end without a blank line\ndata: {}",
]
AWKWARD_EVENTS = [
    TaskStreamEvent(event="progress", data={"progress": 40}, id="7"),
    TaskStreamEvent(event="message", data={"text": "not json"}, id="7"),
    TaskStreamEvent(event="status", data={"value": [1]}, id="7"),
    TaskStreamEvent(event="status", data={}, id="7"),  # an id with NUL is ignored
    TaskStreamEvent(event="status", data={"error": "a\u2028b\u0085c"}, id="7"),
]


def events_app(frames: Callable[[], AsyncIterator[bytes]]) -> Starlette:
    async def events(request: Request) -> Response:
        if request.path_params["task_id"] == "missing":
            error = {"error": {"code": "not_found", "message": "no task missing"}}
            return JSONResponse(error, status_code=404)
        return StreamingResponse(frames(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/tasks/{task_id}/events", events)])


async def awkward_frames() -> AsyncIterator[bytes]:
    for chunk in AWKWARD_STREAM:
        yield chunk
        await anyio.sleep(0.01)


async def one_event_then_silence() -> AsyncIterator[bytes]:
    yield b'id: 1\nevent: status\ndata: {"status": "running"}\n\n'
    await anyio.sleep(30)


def sync_events(url: str, task_id: str, **kwargs: Any) -> list[TaskStreamEvent]:
    with TaskbeatClient(url) as client:
        return list(client.stream(task_id, **kwargs))


async def test_both_clients_read_awkward_frames_alike() -> None:
    async with serve(events_app(awkward_frames)) as url:
        async with AsyncTaskbeatClient(url) as client:
            async_events = [event async for event in client.stream("t")]
        threaded = await anyio.to_thread.run_sync(sync_events, url, "t")
    assert async_events == AWKWARD_EVENTS
    assert threaded == AWKWARD_EVENTS


async def test_an_error_answer_raises_the_api_error() -> None:
    async with serve(events_app(awkward_frames)) as url:
        async with AsyncTaskbeatClient(url) as client:
            with pytest.raises(TaskbeatAPIError) as missing:
                async for _ in client.stream("missing"):
                    pass
        assert (missing.value.status_code, missing.value.code) == (404, "not_found")
        with pytest.raises(TaskbeatAPIError, match="no task missing"):
            await anyio.to_thread.run_sync(sync_events, url, "missing")


async def test_a_silent_stream_ends_at_its_timeout() -> None:
    async with serve(events_app(one_event_then_silence)) as url:
        started = time.monotonic()
        async with AsyncTaskbeatClient(url) as client:
            events = [event async for event in client.stream("t", timeout_s=0.5)]
        async_s = time.monotonic() - started
        started = time.monotonic()
        threaded = await anyio.to_thread.run_sync(lambda: sync_events(url, "t", timeout_s=0.5))
        sync_s = time.monotonic() - started
    running = [TaskStreamEvent(event="status", data={"status": "running"}, id="1")]
    assert events == running
    assert threaded == running
    assert 0.4 < async_s < 5
    assert 0.4 < sync_s < 5
