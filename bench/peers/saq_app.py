"""FastAPI + SAQ. App: `uvicorn bench.peers.saq_app:app`; worker:
`saq bench.peers.saq_app.settings`.

Completion is read from SAQ's own job record (`queue.job(key)`), as a client of it would.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Response, status
from saq import Queue
from saq.job import Status

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CONCURRENCY = int(os.environ.get("BENCH_PEER_CONCURRENCY", "100"))
STATUS = {
    Status.NEW: "pending",
    Status.QUEUED: "pending",
    Status.ACTIVE: "running",
    Status.COMPLETE: "succeeded",
    Status.FAILED: "failed",
    Status.ABORTED: "cancelled",
    Status.ABORTING: "running",
}

queue = Queue.from_url(REDIS_URL)


async def noop(ctx: dict[str, Any], **_: Any) -> str:
    return "hello world"


settings = {"queue": queue, "functions": [noop], "concurrency": CONCURRENCY}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    await queue.connect()
    yield
    await queue.disconnect()


app = FastAPI(lifespan=lifespan)


@app.post("/v1/tasks", status_code=status.HTTP_202_ACCEPTED)
async def create_task(body: dict[str, Any], response: Response) -> dict[str, Any]:
    job = await queue.enqueue("noop", input=body.get("input"))
    if job is None:
        raise HTTPException(409, "duplicate job")
    response.headers["Location"] = f"/v1/tasks/{job.key}"
    return {"task_id": job.key, "status": STATUS[job.status]}


@app.get("/v1/tasks/{task_id}")
async def get_task(task_id: str) -> dict[str, Any]:
    job = await queue.job(task_id)
    if job is None:
        raise HTTPException(404, "no such job")
    return {"task_id": task_id, "status": STATUS[job.status], "result": job.result}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
