"""A run's writes: create (which may start the run at once), cancel and finish (the hot
writes, applied in batches), and progress. Every state change is a conditional update,
so racing writers cannot both win and a replica that lost a task can never overwrite its
new owner."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, select, update

from app.domain.models import StoredTask, TaskStatus, utcnow
from app.domain.outcome import Outcome
from app.domain.policy import Policy
from app.store.cancels import Cancel, cancel_batch
from app.store.events import Transition, log_transitions
from app.store.idempotency import Holder, IdempotencyClaim, KeyId, take_keys
from app.store.key_limits import over_key_limits
from app.store.policies import lock_policies, log_attempts, room_for
from app.store.reads import tasks_by_id
from app.store.tables import UNFINISHED_VALUES, task_from_row, tasks


@dataclass(frozen=True, slots=True)
class Create:
    """A new task; with `start_for`, its run starts at once for that replica when its
    algorithm has room over the cluster (the row is then inserted running)."""

    task: StoredTask
    start_for: str | None = None
    policy: Policy | None = None  # the configured policy (the row's fields go over it)
    idempotency: IdempotencyClaim | None = None
    max_unfinished: int | None = None  # the creating API key's limit of unfinished tasks


@dataclass(frozen=True, slots=True)
class Created:
    """What a create stored, or, when its idempotency key was taken, the key's first task
    (`replayed`; `same_body` False: the key was used with another body; `task` None: the
    key's task is gone)."""

    task: StoredTask | None
    replayed: bool = False
    same_body: bool = True
    over_limit: int | None = None  # refused: its API key already holds this many unfinished


@dataclass(frozen=True, slots=True)
class Finish:
    task_id: str
    owner: str
    attempt: int
    outcome: Outcome
    retry_at: datetime | None = None  # set: back to the queue, due then, for another attempt


# The hot writes, in the order a batch applies them.
HotWrite = Create | Cancel | Finish


def _started_at_once(conn: Connection, creates: Sequence[Create]) -> set[int]:
    """Indexes of the creates whose run starts now, within each algorithm's room."""
    wanted = [(i, c) for i, c in enumerate(creates) if c.start_for and c.policy]
    if not wanted:
        return set()
    base = {c.task.algorithm: c.policy for _, c in wanted if c.policy is not None}
    now = utcnow()
    room = {name: room_for(conn, policy, now) for name, policy in lock_policies(conn, base).items()}
    chosen = set()
    for i, create in wanted:
        if room[create.task.algorithm] > 0:
            room[create.task.algorithm] -= 1
            chosen.add(i)
    return chosen


def _replays(conn: Connection, creates: Sequence[Create]) -> dict[int, tuple[str, bool]]:
    """Takes the creates' idempotency keys (the first create of a key in the batch claims
    it); index -> (task id, same body) of each create whose key was taken already."""
    first: dict[KeyId, int] = {}
    claims: list[tuple[IdempotencyClaim, str]] = []
    for i, create in enumerate(creates):
        claim = create.idempotency
        if claim is not None and claim.key_id not in first:
            first[claim.key_id] = i
            claims.append((claim, create.task.task_id))
    if not claims:
        return {}
    taken, holders = take_keys(conn, claims)
    replays = {}
    for i, create in enumerate(creates):
        claim = create.idempotency
        if claim is None or (claim.key_id in taken and first[claim.key_id] == i):
            continue
        winner = creates[first[claim.key_id]]
        if claim.key_id in taken and winner.idempotency is not None:
            holder = Holder(winner.idempotency.body_hash, winner.task.task_id)
        else:
            holder = holders.get(claim.key_id, Holder("", ""))
        replays[i] = (holder.task_id, holder.body_hash == claim.body_hash)
    return replays


def insert_batch(conn: Connection, creates: Sequence[Create]) -> list[Created]:
    """Inserts the new tasks, pending in the queue or already running (one write saved);
    a create whose idempotency key was taken inserts nothing and answers the key's task,
    and one that would take its API key past its limit of unfinished tasks is refused."""
    replays = _replays(conn, creates)
    limited = [
        (i, create.task.api_key_id, create.max_unfinished)
        for i, create in enumerate(creates)
        if i not in replays and create.task.api_key_id and create.max_unfinished is not None
    ]
    refused = over_key_limits(conn, limited)
    fresh = [c for i, c in enumerate(creates) if i not in replays and i not in refused]
    stored = {task.task_id: task for task in _insert_tasks(conn, fresh)} if fresh else {}
    replayed_ids = [task_id for task_id, _ in replays.values() if task_id not in stored]
    if replayed_ids:
        stored.update((t.task_id, t) for t in tasks_by_id(conn, replayed_ids) if t is not None)
    answers = []
    for i, create in enumerate(creates):
        if i in refused:
            answers.append(Created(None, over_limit=refused[i]))
        elif i in replays:
            task_id, same_body = replays[i]
            answers.append(Created(stored.get(task_id), replayed=True, same_body=same_body))
        else:
            answers.append(Created(stored[create.task.task_id]))
    return answers


def _insert_tasks(conn: Connection, creates: Sequence[Create]) -> list[StoredTask]:
    now = utcnow()
    at_once = _started_at_once(conn, creates)
    stored = []
    for i, create in enumerate(creates):
        task = create.task
        if i in at_once:
            task = task.model_copy(
                update={
                    "status": TaskStatus.RUNNING,
                    "owner": create.start_for,
                    "attempt": 1,
                    "started_at": now,
                }
            )
        stored.append(task)
    conn.execute(insert(tasks), [task.model_dump() for task in stored])
    transitions: list[Transition] = [
        (c.task.task_id, None, c.task.status, c.task.owner, c.task.attempt) for c in creates
    ]
    keys = [c.task.api_key_id for c in creates]
    transitions += [
        (stored[i].task_id, TaskStatus.PENDING, TaskStatus.RUNNING, stored[i].owner, 1)
        for i in sorted(at_once)
    ]
    keys += [None] * len(at_once)
    log_transitions(conn, transitions, keys)
    return stored


def cancel_asked_pending(conn: Connection, where: Any, *, replica: str | None) -> list[StoredTask]:
    """pending -> cancelled for the tasks matching `where` whose cancel was asked: a cancel
    that reached a task between its holders is honoured by whoever holds it next."""
    statement = (
        update(tasks)
        .where(where, tasks.c.status == TaskStatus.PENDING.value, tasks.c.cancel_requested)
        .values(
            status=TaskStatus.CANCELLED.value,
            error="cancelled before it started",
            finished_at=utcnow(),
        )
        .returning(*tasks.c)
    )
    cancelled = [task_from_row(row) for row in conn.execute(statement).mappings()]
    log_transitions(
        conn,
        [
            (task.task_id, TaskStatus.PENDING, TaskStatus.CANCELLED, replica, task.attempt)
            for task in cancelled
        ],
        [task.cancel_key_id for task in cancelled],
    )
    return cancelled


# The run still holds its task: fencing on owner and attempt.
_HELD_BY_THE_RUN = and_(
    tasks.c.task_id == bindparam("b_task_id"),
    tasks.c.status == TaskStatus.RUNNING.value,
    tasks.c.owner == bindparam("b_owner"),
    tasks.c.attempt == bindparam("b_attempt"),
)
_FINISH = (
    update(tasks)
    .where(_HELD_BY_THE_RUN)
    .values(
        status=bindparam("b_status"),
        progress=bindparam("b_progress"),
        result=bindparam("b_result", type_=tasks.c.result.type),
        error=bindparam("b_error"),
        poll_failures=bindparam("b_poll_failures"),
        finished_at=bindparam("b_finished_at", type_=tasks.c.finished_at.type),
    )
)


_RETRY = (
    update(tasks)
    .where(_HELD_BY_THE_RUN)
    .values(
        status=TaskStatus.PENDING.value,
        owner=None,
        progress=0,
        error=bindparam("b_error"),
        next_attempt_at=bindparam("b_retry_at", type_=tasks.c.next_attempt_at.type),
    )
)


def _params(finish: Finish, now: datetime) -> dict[str, Any]:
    return {
        "b_task_id": finish.task_id,
        "b_owner": finish.owner,
        "b_attempt": finish.attempt,
        "b_status": finish.outcome.status.value,
        "b_progress": finish.outcome.progress,
        "b_result": finish.outcome.result,
        "b_error": finish.outcome.error,
        "b_poll_failures": finish.outcome.poll_failures,
        "b_finished_at": now,
        "b_retry_at": finish.retry_at,
    }


def finish_batch(conn: Connection, finishes: Sequence[Finish]) -> list[bool]:
    """Reads the rows under lock (FOR UPDATE; on SQLite the writer's BEGIN IMMEDIATE), keeps
    the finishes whose run still holds its task (fencing on owner and attempt), and writes
    those in one executemany."""
    query = (
        select(
            tasks.c.task_id,
            tasks.c.status,
            tasks.c.owner,
            tasks.c.attempt,
            tasks.c.started_at,
            tasks.c.cancel_requested,
            tasks.c.cancel_key_id,
        )
        .where(tasks.c.task_id.in_([finish.task_id for finish in finishes]))
        .order_by(tasks.c.task_id)  # every multi-row writer locks in task_id order
        .with_for_update()
    )
    holders = {row.task_id: row for row in conn.execute(query)}
    winners: dict[str, Finish] = {}
    for finish in finishes:
        row = holders.get(finish.task_id)
        if (
            row is not None
            and finish.task_id not in winners
            and row.status == TaskStatus.RUNNING.value
            and (row.owner, row.attempt) == (finish.owner, finish.attempt)
        ):
            winners[finish.task_id] = finish
    now = utcnow()
    written = [_honouring_a_cancel(finish, holders[finish.task_id]) for finish in winners.values()]
    finals = [f for f in written if f.retry_at is None]
    retries = [f for f in written if f.retry_at is not None]
    if finals:
        conn.execute(_FINISH, [_params(finish, now) for finish in finals])
    if retries:
        conn.execute(_RETRY, [_params(finish, now) for finish in retries])
    log_transitions(
        conn,
        [(f.task_id, TaskStatus.RUNNING, f.outcome.status, f.owner, f.attempt) for f in finals]
        + [
            (f.task_id, TaskStatus.RUNNING, TaskStatus.PENDING, f.owner, f.attempt) for f in retries
        ],
        [_cancel_key(holders[f.task_id], f) for f in finals] + [None] * len(retries),
    )
    log_attempts(
        conn,
        [
            (f.task_id, f.attempt, f.outcome.status.value, f.outcome.error, f.owner, row.started_at)
            for f, row in ((f, holders[f.task_id]) for f in written)
        ],
    )
    return [winners.get(finish.task_id) is finish for finish in finishes]


def _honouring_a_cancel(finish: Finish, row: Any) -> Finish:
    """A retry of a task whose cancel was asked meanwhile ends it cancelled instead."""
    if finish.retry_at is None or not row.cancel_requested:
        return finish
    cancelled = Outcome(TaskStatus.CANCELLED, finish.outcome.progress, error="cancelled")
    return Finish(finish.task_id, finish.owner, finish.attempt, cancelled)


def _cancel_key(row: Any, finish: Finish) -> str | None:
    """The key that asked a cancel, on the transition that honoured it."""
    return row.cancel_key_id if finish.outcome.status is TaskStatus.CANCELLED else None


_APPLIERS: tuple[tuple[type, Callable[[Connection, Any], list[Any]]], ...] = (
    (Create, insert_batch),
    (Cancel, cancel_batch),
    (Finish, finish_batch),
)


def write_batch(conn: Connection, writes: Sequence[HotWrite]) -> list[Any]:
    """Creates, cancels and run finishes that arrived together, in one transaction (the
    finishes after the creates, so that a run finished here frees its slot after the
    creates' count: never over the limit)."""
    results: dict[int, Any] = {}
    for kind, apply in _APPLIERS:
        indexes = [i for i, write in enumerate(writes) if isinstance(write, kind)]
        if indexes:
            outcomes = apply(conn, [writes[i] for i in indexes])
            results.update(zip(indexes, outcomes, strict=True))
    return [results[i] for i in range(len(writes))]


def request_cancel(conn: Connection, *, task_id: str, api_key_id: str | None = None) -> bool:
    """Records a cancel (and the key asking) so whoever runs the task honours it (a task
    waiting in the queue ends cancelled here); False if already finished."""
    statement = (
        update(tasks)
        .where(tasks.c.task_id == task_id, tasks.c.status.in_(UNFINISHED_VALUES))
        .values(cancel_requested=True, cancel_key_id=api_key_id)
    )
    if conn.execute(statement).rowcount != 1:
        return False
    cancel_asked_pending(
        conn, and_(tasks.c.task_id == task_id, tasks.c.owner.is_(None)), replica=None
    )
    return True


_SAVE_PROGRESS = (
    update(tasks)
    .where(
        tasks.c.task_id == bindparam("b_task_id"),
        tasks.c.owner == bindparam("b_owner"),
        tasks.c.status == TaskStatus.RUNNING.value,
    )
    .values(progress=bindparam("b_progress"), poll_failures=bindparam("b_poll_failures"))
)


def save_progress(conn: Connection, *, owner: str, rows: Sequence[tuple[str, int, int]]) -> None:
    """Persists (task_id, progress, poll_failures) of the owner's running tasks."""
    params = [
        {"b_task_id": task_id, "b_owner": owner, "b_progress": progress, "b_poll_failures": fails}
        for task_id, progress, fails in sorted(rows)
    ]
    if params:
        conn.execute(_SAVE_PROGRESS, params)
