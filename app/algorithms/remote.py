"""External algorithm engines over HTTP, registered by the operator in configuration.

The engine's side of the exchange:
- submit: `POST submit_url` with `{"task_id", "input"}` answers `{"job_id": "..."}`
  (4xx: the input is refused);
- poll: `GET result_url` (with `{job_id}` filled in) answers `{"state": "queued" | "running" |
  "succeeded" | "failed" | "cancelled", "progress": 0-100, "result"?, "error"?}`;
- cancel (optional): `POST cancel_url`, best effort;
- and at any time the engine may call back `POST /v1/tasks/{task_id}/callback` (signed), which
  wakes the run at once instead of at the next poll.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from app.algorithms.base import (
    AlgorithmError,
    InputRejected,
    JobState,
    JobStatus,
    PollFailed,
)
from app.core import strict_json
from app.core.config import RemoteAlgorithmConfig

log = logging.getLogger(__name__)


@dataclass(eq=False)
class RemoteJob:
    """One job on the engine, and what its callbacks reported."""

    job_id: str
    task_id: str
    progress: int = 0
    reported: JobStatus | None = None  # a finished status reported by callback
    cancelled: bool = False
    wake: anyio.Event = field(default_factory=anyio.Event)


class RemoteAlgorithm:
    """Adapter of one external engine; every call is async HTTP with a bounded timeout."""

    def __init__(self, config: RemoteAlgorithmConfig, client: httpx.AsyncClient) -> None:
        self.name = config.name
        self._config = config
        self._client = client
        self._headers = {"Authorization": config.auth_header} if config.auth_header else {}

    def validate(self, payload: dict[str, Any]) -> None:
        if not isinstance(payload, dict):
            raise InputRejected("input must be a JSON object")

    async def submit(self, payload: dict[str, Any], *, task_id: str, attempt: int = 1) -> RemoteJob:
        self.validate(payload)
        try:
            response = await self._client.post(
                self._config.submit_url,
                json={"task_id": task_id, "input": payload},
                headers=self._headers,
                timeout=self._config.request_timeout_s,
            )
        except httpx.HTTPError as exc:
            raise AlgorithmError(f"{self.name}: engine unreachable: {exc!r}") from exc
        if 400 <= response.status_code < 500:
            raise InputRejected(f"{self.name} answered {response.status_code}: {response.text}")
        if response.status_code >= 300:
            raise AlgorithmError(f"{self.name} answered {response.status_code} to submit")
        try:
            job_id = str(response.json()["job_id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AlgorithmError(f"{self.name}: submit answer has no job_id") from exc
        return RemoteJob(job_id=job_id, task_id=task_id)

    async def poll(self, handle: RemoteJob) -> JobStatus:
        if handle.cancelled:
            return JobStatus(JobState.CANCELLED, handle.progress)
        if handle.reported is not None:
            return handle.reported
        url = self._config.result_url.format(job_id=handle.job_id)
        try:
            response = await self._client.get(
                url, headers=self._headers, timeout=self._config.request_timeout_s
            )
            response.raise_for_status()
            body = strict_json.loads(response.content)  # stored JSON is JSON: no NaN
            status = JobStatus(
                state=JobState(body["state"]),
                progress=max(handle.progress, int(body.get("progress") or 0)),
                result=body.get("result"),
                error=body.get("error"),
            )
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise PollFailed(f"{self.name}: poll of job {handle.job_id} failed: {exc!r}") from exc
        handle.progress = status.progress
        return status

    async def wait(self, handle: RemoteJob, timeout_s: float) -> None:
        with anyio.move_on_after(timeout_s):
            await handle.wake.wait()
        handle.wake = anyio.Event()

    def deliver(self, handle: RemoteJob, status: JobStatus) -> None:
        """A callback's report: progress moves now; a finished status ends the run."""
        handle.progress = max(handle.progress, min(max(status.progress, 0), 100))
        if status.state.finished and handle.reported is None:
            handle.reported = JobStatus(status.state, handle.progress, status.result, status.error)
            handle.wake.set()

    async def cancel(self, handle: RemoteJob) -> None:
        handle.cancelled = True
        handle.wake.set()
        if self._config.cancel_url is None:
            return
        try:
            await self._client.post(
                self._config.cancel_url.format(job_id=handle.job_id),
                headers=self._headers,
                timeout=self._config.request_timeout_s,
            )
        except httpx.HTTPError as exc:
            log.warning("%s: cancel of job %s failed: %r", self.name, handle.job_id, exc)

    def release(self, handle: RemoteJob) -> None:
        handle.wake.set()
