"""Real HTTP servers on loopback ports, inside the test's event loop: the app under uvicorn
(for streaming responses, which httpx's ASGI transport buffers) and a test algorithm engine."""

import itertools
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serve(app: ASGIApp, port: int | None = None) -> AsyncIterator[str]:
    """Serves `app` (lifespan not run: callers run it) until the context exits."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    server.capture_signals = _no_signals  # type: ignore[method-assign]
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        for _ in range(1000):  # 10 s at most
            if server.started:
                break
            await anyio.sleep(0.01)
        else:
            raise AssertionError(f"uvicorn did not start on port {port}")
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True


@asynccontextmanager
async def over_http(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app behind `client` (an app_client) through a real HTTP server."""
    async with (
        serve(client.app) as url,  # type: ignore[attr-defined]
        httpx.AsyncClient(base_url=url, timeout=15) as http,
    ):
        yield http


class _NoSignals:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _no_signals() -> _NoSignals:
    return _NoSignals()


@dataclass
class Engine:
    """A test algorithm engine: jobs whose state the test sets, as a remote engine would."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    submitted: list[dict[str, Any]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    polls: int = 0
    poll_status_code: int = 200
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def job_of(self, task_id: str) -> str:
        for job_id, job in self.jobs.items():
            if job["task_id"] == task_id:
                return job_id
        raise KeyError(task_id)

    def set(self, task_id: str, **state: Any) -> None:
        self.jobs[self.job_of(task_id)].update(state)

    def app(self) -> Starlette:
        async def submit(request: Request) -> JSONResponse:
            body = await request.json()
            if body["input"].get("refuse"):
                return JSONResponse({"detail": "refused"}, status_code=422)
            job_id = f"job-{next(self._ids)}"
            self.submitted.append(body)
            self.jobs[job_id] = {"task_id": body["task_id"], "state": "running", "progress": 0}
            return JSONResponse({"job_id": job_id}, status_code=201)

        async def result(request: Request) -> JSONResponse:
            self.polls += 1
            if self.poll_status_code != 200:
                return JSONResponse({"detail": "down"}, status_code=self.poll_status_code)
            job = self.jobs[request.path_params["job_id"]]
            if "raw" in job:  # an answer a JSON encoder would not write (NaN, say)
                return Response(job["raw"], media_type="application/json")
            return JSONResponse({k: v for k, v in job.items() if k != "task_id"})

        async def cancel(request: Request) -> JSONResponse:
            job_id = request.path_params["job_id"]
            self.cancelled.append(job_id)
            self.jobs[job_id]["state"] = "cancelled"
            return JSONResponse({})

        return Starlette(
            routes=[
                Route("/jobs", submit, methods=["POST"]),
                Route("/jobs/{job_id}", result),
                Route("/jobs/{job_id}/cancel", cancel, methods=["POST"]),
            ]
        )

    def config(self, url: str, name: str = "engine") -> dict[str, Any]:
        return {
            "name": name,
            "submit_url": f"{url}/jobs",
            "result_url": f"{url}/jobs/{{job_id}}",
            "cancel_url": f"{url}/jobs/{{job_id}}/cancel",
            "request_timeout_s": 2.0,
        }
