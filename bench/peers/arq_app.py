"""FastAPI + arq. App: `uvicorn bench.peers.arq_app:app`; worker:
`arq bench.peers.arq_app.WorkerSettings`.

Completion is read from arq's own job status (`Job(id, pool).status()`).
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job, JobStatus
from fastapi import FastAPI, HTTPException, Response, status

REDIS_SETTINGS = RedisSettings.from_dsn(
    os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
)
# arq fetches at most max_jobs queued jobs every poll_delay (0.5 s by default).
MAX_JOBS = int(os.environ.get("BENCH_ARQ_MAX_JOBS", "500"))
# arq logs every job at INFO by default; the bench runs every system at WARNING.
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}},
}
STATUS = {
    JobStatus.deferred: "pending",
    JobStatus.queued: "pending",
    JobStatus.in_progress: "running",
    JobStatus.complete: "succeeded",
    JobStatus.not_found: "unknown",
}


async def noop(ctx: dict[str, Any], **_: Any) -> str:
    return "hello world"


class WorkerSettings:
    functions = [noop]
    redis_settings = REDIS_SETTINGS
    max_jobs = MAX_JOBS


pool: ArqRedis | None = None


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    global pool
    pool = await create_pool(REDIS_SETTINGS)
    yield
    await pool.aclose()


app = FastAPI(lifespan=lifespan)


@app.post("/v1/tasks", status_code=status.HTTP_202_ACCEPTED)
async def create_task(body: dict[str, Any], response: Response) -> dict[str, Any]:
    assert pool is not None
    job = await pool.enqueue_job("noop", input=body.get("input"))
    if job is None:
        raise HTTPException(409, "duplicate job")
    response.headers["Location"] = f"/v1/tasks/{job.job_id}"
    return {"task_id": job.job_id, "status": "pending"}


@app.get("/v1/tasks/{task_id}")
async def get_task(task_id: str) -> dict[str, Any]:
    assert pool is not None
    job_status = await Job(task_id, pool).status()
    if job_status is JobStatus.not_found:
        raise HTTPException(404, "no such job")
    return {"task_id": task_id, "status": STATUS[job_status]}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
