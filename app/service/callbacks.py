"""Signed callbacks of external engines: `POST /v1/tasks/{id}/callback`.

Header `X-Taskbeat-Signature: t=<unix seconds>,v2=<hex>`, where hex is
HMAC-SHA256(secret, f"{t}.{task_id}.{raw body}"): the task id is signed, so a report made
for one task is refused on every other. (`v1=`, which signed "<t>.<body>" for any task, is
refused with a message that says so.) Either the current or the previous secret (while
rotating) is accepted; more than 300 s of skew is stale; a signature is accepted once.
"""

import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from app.algorithms.base import AcceptsCallbacks, JobState, JobStatus
from app.core import strict_json
from app.core.digits import ascii_int
from app.core.faults import REDIS_AWAY
from app.domain.errors import Conflict, InvalidRequest, StoreUnavailable, Unauthorized
from app.domain.models import TaskPublic, TaskStatus
from app.domain.outcome import Outcome
from app.live.keys import CALLBACK_SEEN_TTL_S
from app.live.updates import Update, UpdateKind
from app.service.tasks import TaskService

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Taskbeat-Signature"
MAX_SKEW_S = 300
MAX_TIMESTAMP_DIGITS = 12
RUN_END_WAIT_S = 5.0
REPORTABLE = {TaskStatus.RUNNING, TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED}
HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
FORMAT = f"{SIGNATURE_HEADER} must be t=<unix seconds>,v2=<64 hex digits>"


@dataclass(frozen=True)
class Signature:
    timestamp: int
    digest: bytes

    @property
    def replay_key(self) -> tuple[str, str]:
        return str(self.timestamp), self.digest.hex()


def _mac(secret: str, task_id: str, body: bytes, timestamp: int) -> bytes:
    signed = f"{timestamp}.{task_id}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).digest()


def sign(secret: str, task_id: str, body: bytes, timestamp: int) -> str:
    """The header value an engine sends with `body` for `task_id` (as the README computes)."""
    return f"t={timestamp},v2={_mac(secret, task_id, body, timestamp).hex()}"


def parse_signature_header(header: str | None) -> Signature:
    """`t=<1-12 ASCII digits>,v2=<64 hex digits>`, each once, nothing else; Unauthorized
    otherwise (a header is text that starlette decoded as latin-1: never trusted as such)."""
    if not header:
        raise Unauthorized(f"missing {SIGNATURE_HEADER} header")
    fields: dict[str, str] = {}
    for part in header.split(","):
        name, equals, value = part.strip().partition("=")
        if not equals or name in fields:
            raise Unauthorized(FORMAT)
        fields[name] = value
    if "v1" in fields:
        raise Unauthorized(
            'v1 signatures are no longer accepted: sign "<t>.<task_id>.<body>" and send v2='
        )
    if set(fields) != {"t", "v2"} or not HEX_DIGEST.fullmatch(fields["v2"]):
        raise Unauthorized(FORMAT)
    try:
        timestamp = ascii_int(fields["t"], max_digits=MAX_TIMESTAMP_DIGITS)
    except ValueError:
        raise Unauthorized(FORMAT) from None
    return Signature(timestamp, bytes.fromhex(fields["v2"]))


def verify_signature(
    header: str | None, task_id: str, body: bytes, secrets: list[str], *, now: float
) -> Signature:
    """The valid, fresh signature of this task's callback; raises Unauthorized otherwise."""
    if not secrets:
        raise Unauthorized("callbacks are disabled: TASKBEAT_CALLBACK_SECRET is not set")
    signature = parse_signature_header(header)
    if abs(now - signature.timestamp) > MAX_SKEW_S:
        raise Unauthorized(f"stale signature: more than {MAX_SKEW_S} s of clock skew")
    for secret in secrets:
        expected = _mac(secret, task_id, body, signature.timestamp)
        if hmac.compare_digest(expected, signature.digest):
            return signature
    raise Unauthorized("bad signature (for this task, body and time)")


class CallbackReport(BaseModel):
    """What an engine reports about a task."""

    model_config = ConfigDict(extra="forbid")

    status: TaskStatus | None = None
    progress: Annotated[int, Strict()] | None = Field(default=None, ge=0, le=100)
    result: Any = None
    error: str | None = Field(default=None, max_length=10_000)


@dataclass
class CallbackReceiver:
    service: TaskService

    async def _secrets(self, task_id: str) -> list[str]:
        """The secrets a report on `task_id` may be signed with: its engine's own, when the
        engine has one, else the service's (current and previous)."""
        settings = self.service.settings
        engines = {engine.name: engine for engine in settings.remote_algorithms}
        if any(engine.callback_secret for engine in engines.values()):
            task = await self.service.store.get_task(task_id=task_id)
            engine = engines.get(task.algorithm) if task is not None else None
            if engine is not None and engine.callback_secret:
                return [engine.callback_secret]
        return [s for s in (settings.callback_secret, settings.callback_secret_previous) if s]

    async def _first_use(self, signature: Signature) -> bool:
        live = self.service.live
        try:
            key = live.keys.callback_seen(*signature.replay_key)
            return bool(await live.client.set(key, 1, nx=True, ex=CALLBACK_SEEN_TTL_S))
        except REDIS_AWAY as exc:
            raise StoreUnavailable("cannot check callbacks for replays: redis away") from exc

    async def receive(self, task_id: str, header: str | None, body: bytes) -> TaskPublic:
        """Authenticates, then applies a report to the task (409 when it cannot apply)."""
        secrets = await self._secrets(task_id)
        signature = verify_signature(header, task_id, body, secrets, now=time.time())
        try:
            report = CallbackReport.model_validate(strict_json.loads(body))
        except strict_json.JSONRefused as exc:
            raise InvalidRequest(f"callback body: {exc}") from exc
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "body"
            raise InvalidRequest(f"callback body: {where}: {error['msg']}") from exc
        if not await self._first_use(signature):
            raise Unauthorized("replayed signature: this callback was already received")
        return await self.apply(task_id, report)

    async def apply(self, task_id: str, report: CallbackReport) -> TaskPublic:
        service = self.service
        task = await service.get(task_id)
        if task.status.finished:
            raise Conflict(f"task {task_id} already finished: {task.status.value}")
        if report.status is not None and report.status not in REPORTABLE:
            raise Conflict(f"an engine cannot move a task to {report.status.value}")
        if task.status is not TaskStatus.RUNNING:
            raise Conflict(f"task {task_id} is {task.status.value}, not running")
        finishing = report.status is not None and report.status.finished
        run = service.runner.local_run(task_id)
        if run is not None and run.attempt == task.attempt and run.handle is not None:
            adapter = run.adapter
            if report.progress is not None:
                run.progress = max(run.progress, report.progress)
            if isinstance(adapter, AcceptsCallbacks):
                state = JobState(report.status) if finishing and report.status else JobState.RUNNING
                progress = report.progress if report.progress is not None else run.progress
                adapter.deliver(run.handle, JobStatus(state, progress, report.result, report.error))
                if finishing:
                    with anyio.move_on_after(RUN_END_WAIT_S):
                        await run.ended.wait()
                    return await service.get(task_id)
        if finishing:
            return await self._finish(task, report)
        if report.progress is not None:
            await self._progress(task, report.progress)
        return await service.get(task_id)

    async def _finish(self, task: TaskPublic, report: CallbackReport) -> TaskPublic:
        """Finishes a task not run here (or not by a callback-aware adapter), through the
        same conditional update as the runner: exactly once, and only for that attempt."""
        service = self.service
        row = await service.store.get_task(task_id=task.task_id)
        assert report.status is not None
        if row is None or row.owner is None:
            raise Conflict(f"task {task.task_id} has no holder now; retry the callback")
        progress = 100 if report.status is TaskStatus.SUCCEEDED else (report.progress or 0)
        outcome = Outcome(
            report.status,
            max(task.progress, progress),
            report.result if report.status is TaskStatus.SUCCEEDED else None,
            None
            if report.status is TaskStatus.SUCCEEDED
            else (report.error or "reported by the engine"),
            row.poll_failures,
        )
        won = await service.store.finish_run(
            task_id=task.task_id, owner=row.owner, attempt=row.attempt, outcome=outcome
        )
        if not won:
            current = await service.get(task.task_id)
            raise Conflict(f"task {task.task_id} changed meanwhile: {current.status.value}")
        service.updates.status_changed(task.task_id, report.status, row.attempt, progress)
        run = service.runner.local_run(task.task_id)
        if run is not None:
            run.scope.cancel()  # finished by the engine's word: the local run has nothing to add
        return await service.get(task.task_id)

    async def _progress(self, task: TaskPublic, progress: int) -> None:
        self.service.updates.progress_changed(task.task_id, task.attempt, progress)


def apply_foreign_update(service: TaskService, update: Update) -> None:
    """Another replica's update of a task this replica runs: a callback's progress reaches
    the run; a finish written elsewhere stops the run (its own write could only lose)."""
    run = service.runner.local_run(update.task_id)
    if run is None or run.adapter is None:
        return
    if update.kind is UpdateKind.PROGRESS and update.attempt == run.attempt:
        run.progress = max(run.progress, update.progress)
        if isinstance(run.adapter, AcceptsCallbacks) and run.handle is not None:
            run.adapter.deliver(run.handle, JobStatus(JobState.RUNNING, update.progress))
    elif update.kind is UpdateKind.STATUS and update.status and TaskStatus(update.status).finished:
        log.info("task %s: finished on another replica; stopping the local run", update.task_id)
        run.scope.cancel()
