"""The ceiling: a bare FastAPI app whose POST /v1/tasks only answers 202 with a fresh id.

Served by the same uvicorn settings as the service; what it answers per second is the
physical limit of a create endpoint on this machine.
"""

import uuid
from typing import Any

from fastapi import FastAPI, Response, status

app = FastAPI()


@app.post("/v1/tasks", status_code=status.HTTP_202_ACCEPTED)
async def create_task(body: dict[str, Any], response: Response) -> dict[str, Any]:
    task_id = str(uuid.uuid4())
    response.headers["Location"] = f"/v1/tasks/{task_id}"
    return {"task_id": task_id, "status": "pending", "input": body.get("input")}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
