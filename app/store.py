"""Persistence of tasks. Every state change is a conditional update, so racing writers
cannot both win, and a replica that lost a task can never overwrite its new owner. Every
status change is appended to task_events in the transaction that made it.

Each function is async; its SQL runs in one transaction on a worker thread (app.core.db).
The hot writes (create, run start, run finish) go through one group commit: writes that
arrive together share a transaction, and each caller still waits for its own commit.
"""

import base64
import binascii
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import RowMapping

from app.core.batching import GroupCommit
from app.core.db import Database
from app.errors import InvalidCursor
from app.models import (
    FINISHED,
    UNFINISHED,
    Replica,
    StoredTask,
    Task,
    TaskEvent,
    TaskStatus,
    is_task_id,
    utcnow,
)

# Rows one shared transaction may carry (well under SQLite's bound-parameter limit).
MAX_BATCH = 256
tasks = Task.__table__  # type: ignore[attr-defined]
task_events = TaskEvent.__table__  # type: ignore[attr-defined]
replicas = Replica.__table__  # type: ignore[attr-defined]
UNFINISHED_VALUES = [status.value for status in UNFINISHED]
Transition = tuple[str, TaskStatus | None, TaskStatus, str | None, int]


def _task(row: RowMapping) -> StoredTask:
    return StoredTask.model_validate(dict(row))


def _log(conn: Connection, transitions: Sequence[Transition]) -> None:
    """Appends (task_id, from, to, replica, attempt) transitions in one executemany."""
    if not transitions:
        return
    at = utcnow()
    conn.execute(
        insert(task_events),
        [
            {
                "task_id": task_id,
                "from_status": None if from_status is None else from_status.value,
                "to_status": to_status.value,
                "replica": replica,
                "attempt": attempt,
                "at": at,
            }
            for task_id, from_status, to_status, replica, attempt in transitions
        ],
    )


def _transition(
    conn: Connection,
    statement: Any,
    *,
    task_id: str,
    from_status: TaskStatus,
    to_status: TaskStatus,
    replica: str | None,
) -> RowMapping | None:
    """Runs a conditional UPDATE that RETURNs at least `attempt`; when it matched, logs the
    transition. None when the row was not as the update required."""
    row = conn.execute(statement).mappings().first()
    if row is not None:
        _log(conn, [(task_id, from_status, to_status, replica, row["attempt"])])
    return row


# ----- create ----------------------------------------------------------------------------


async def insert_task(db: Database, *, task: StoredTask) -> None:
    """Stores a new task; returns once the transaction holding it has committed."""
    await _write(db, task)


def _insert_batch(conn: Connection, new_tasks: Sequence[StoredTask]) -> list[None]:
    conn.execute(insert(tasks), [task.model_dump() for task in new_tasks])
    _log(conn, [(task.task_id, None, task.status, task.owner, task.attempt) for task in new_tasks])
    return [None] * len(new_tasks)


# ----- read ------------------------------------------------------------------------------


async def get_task(db: Database, *, task_id: str) -> StoredTask | None:
    """The task as committed when the call was made. Lookups made meanwhile share one
    query: a worker-thread hop per lookup costs far more than the lookup itself."""
    found: StoredTask | None = await _batched(db, "reads", task_id, _get_batch, write=False)
    return found


def _get_batch(conn: Connection, task_ids: Sequence[str]) -> list[StoredTask | None]:
    query = select(tasks).where(tasks.c.task_id.in_(set(task_ids)))
    found = {row["task_id"]: _task(row) for row in conn.execute(query).mappings()}
    return [found.get(task_id) for task_id in task_ids]


async def task_history(db: Database, *, task_id: str) -> list[TaskEvent]:
    """The task's transitions, oldest first."""

    def read(conn: Connection) -> list[TaskEvent]:
        query = (
            select(task_events).where(task_events.c.task_id == task_id).order_by(task_events.c.id)
        )
        return [TaskEvent.model_validate(dict(row)) for row in conn.execute(query).mappings()]

    return await db.read(read)


def _cursor_of(created_at: datetime, task_id: str) -> str:
    raw = f"{created_at.isoformat()}|{task_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def encode_cursor(task: StoredTask) -> str:
    return _cursor_of(task.created_at, task.task_id)


CURSOR_MAX_CHARS = 200
# a cursor names a task's creation time: anything outside these years is forged, and near
# the calendar's ends a time-zone conversion overflows
CURSOR_YEARS = range(2000, 9000)


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(created_at, task_id) of a cursor this service gave out, in the exact form it gives
    them out; InvalidCursor (bad input, never a store fault) for anything else."""
    if len(cursor) > CURSOR_MAX_CHARS or not cursor.isascii():
        raise InvalidCursor("not one this service gave out")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.b64decode(padded, altchars=b"-_", validate=True).decode("ascii")
        created, task_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(created)
    except (ValueError, binascii.Error) as exc:
        raise InvalidCursor("not one this service gave out") from exc
    if (
        created_at.utcoffset() != timedelta(0)
        or created_at.year not in CURSOR_YEARS
        or not is_task_id(task_id)
        or _cursor_of(created_at, task_id) != cursor
    ):
        raise InvalidCursor("not one this service gave out")
    return created_at, task_id


async def list_tasks(
    db: Database,
    *,
    status: TaskStatus | None = None,
    algorithm: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[StoredTask], str | None]:
    """A page of tasks, newest first, and the cursor of the next page (None at the end)."""
    query = select(tasks)
    if status is not None:
        query = query.where(tasks.c.status == status.value)
    if algorithm is not None:
        query = query.where(tasks.c.algorithm == algorithm)
    if cursor is not None:
        created_at, task_id = decode_cursor(cursor)
        query = query.where(
            or_(
                tasks.c.created_at < created_at,
                and_(tasks.c.created_at == created_at, tasks.c.task_id < task_id),
            )
        )
    query = query.order_by(tasks.c.created_at.desc(), tasks.c.task_id.desc()).limit(limit + 1)
    rows = await db.read(lambda conn: conn.execute(query).mappings().all())
    page = [_task(row) for row in rows[:limit]]
    next_cursor = encode_cursor(page[-1]) if len(rows) > limit else None
    return page, next_cursor


async def count_by_status(db: Database) -> dict[TaskStatus, int]:
    query = select(tasks.c.status, func.count()).group_by(tasks.c.status)
    rows = await db.read(lambda conn: conn.execute(query).all())
    counts = dict.fromkeys(TaskStatus, 0)
    for status, count in rows:
        counts[TaskStatus(status)] = int(count)
    return counts


# ----- a run: start and finish ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Start:
    task_id: str
    owner: str


async def start_run(db: Database, *, task_id: str, owner: str) -> StoredTask | None:
    """pending -> running for the owner's next attempt, or pending -> cancelled when its
    cancel was asked (returned so, for the caller to announce); None when the task is not
    the owner's to start (finished, adopted elsewhere)."""
    started: StoredTask | None = await _write(db, _Start(task_id, owner))
    return started


def _cancel_asked_pending(conn: Connection, where: Any, *, replica: str) -> list[StoredTask]:
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
    cancelled = [_task(row) for row in conn.execute(statement).mappings()]
    _log(
        conn,
        [
            (task.task_id, TaskStatus.PENDING, TaskStatus.CANCELLED, replica, task.attempt)
            for task in cancelled
        ],
    )
    return cancelled


def _start_batch(conn: Connection, starts: Sequence[_Start]) -> list[StoredTask | None]:
    started: dict[str, StoredTask] = {}
    now = utcnow()
    for owner in {start.owner for start in starts}:
        mine = [start for start in starts if start.owner == owner]
        ids = [start.task_id for start in mine]
        owned = and_(tasks.c.task_id.in_(ids), tasks.c.owner == owner)
        for task in _cancel_asked_pending(conn, owned, replica=owner):
            started[task.task_id] = task
        statement = (
            update(tasks)
            .where(
                owned,
                tasks.c.status == TaskStatus.PENDING.value,
                tasks.c.cancel_requested.is_(False),
            )
            .values(
                status=TaskStatus.RUNNING.value,
                attempt=tasks.c.attempt + 1,
                progress=0,
                poll_failures=0,
                started_at=now,
            )
            .returning(*tasks.c)
        )
        for row in conn.execute(statement).mappings():
            started[row["task_id"]] = _task(row)
    _log(
        conn,
        [
            (task.task_id, TaskStatus.PENDING, TaskStatus.RUNNING, task.owner, task.attempt)
            for task in started.values()
            if task.status is TaskStatus.RUNNING
        ],
    )
    # A task asked twice in one batch starts once.
    return [started.pop(start.task_id, None) for start in starts]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended."""

    status: TaskStatus
    progress: int
    result: Any = None
    error: str | None = None
    poll_failures: int = 0


@dataclass(frozen=True, slots=True)
class _Finish:
    task_id: str
    owner: str
    attempt: int
    outcome: Outcome


async def finish_run(
    db: Database, *, task_id: str, owner: str, attempt: int, outcome: Outcome
) -> bool:
    """running -> finished, only for the run's own attempt and owner (fencing)."""
    if outcome.status not in FINISHED:
        raise ValueError(f"{outcome.status} is not a finished status")
    won: bool = await _write(db, _Finish(task_id, owner, attempt, outcome))
    return won


_FINISH = (
    update(tasks)
    .where(
        tasks.c.task_id == bindparam("b_task_id"),
        tasks.c.status == TaskStatus.RUNNING.value,
        tasks.c.owner == bindparam("b_owner"),
        tasks.c.attempt == bindparam("b_attempt"),
    )
    .values(
        status=bindparam("b_status"),
        progress=bindparam("b_progress"),
        result=bindparam("b_result", type_=tasks.c.result.type),
        error=bindparam("b_error"),
        poll_failures=bindparam("b_poll_failures"),
        finished_at=bindparam("b_finished_at", type_=tasks.c.finished_at.type),
    )
)


def _finish_batch(conn: Connection, finishes: Sequence[_Finish]) -> list[bool]:
    """Reads the rows under lock (FOR UPDATE; on SQLite the writer's BEGIN IMMEDIATE), keeps
    the finishes whose run still holds its task, and writes those in one executemany."""
    query = (
        select(tasks.c.task_id, tasks.c.status, tasks.c.owner, tasks.c.attempt)
        .where(tasks.c.task_id.in_([finish.task_id for finish in finishes]))
        .order_by(tasks.c.task_id)  # every multi-row writer locks in task_id order
        .with_for_update()
    )
    holders = {row.task_id: row for row in conn.execute(query)}
    winners: dict[str, _Finish] = {}
    for finish in finishes:
        row = holders.get(finish.task_id)
        if (
            row is not None
            and finish.task_id not in winners
            and row.status == TaskStatus.RUNNING.value
            and (row.owner, row.attempt) == (finish.owner, finish.attempt)
        ):
            winners[finish.task_id] = finish
    if winners:
        now = utcnow()
        conn.execute(
            _FINISH,
            [
                {
                    "b_task_id": finish.task_id,
                    "b_owner": finish.owner,
                    "b_attempt": finish.attempt,
                    "b_status": finish.outcome.status.value,
                    "b_progress": finish.outcome.progress,
                    "b_result": finish.outcome.result,
                    "b_error": finish.outcome.error,
                    "b_poll_failures": finish.outcome.poll_failures,
                    "b_finished_at": now,
                }
                for finish in winners.values()
            ],
        )
        _log(
            conn,
            [
                (f.task_id, TaskStatus.RUNNING, f.outcome.status, f.owner, f.attempt)
                for f in winners.values()
            ],
        )
    return [winners.get(finish.task_id) is finish for finish in finishes]


_Write = StoredTask | _Start | _Finish


def _write_batch(conn: Connection, writes: Sequence[_Write]) -> list[Any]:
    """Creates, run starts and run finishes that arrived together, in one transaction
    (a task starts only after its create committed, so never in the batch that makes it)."""
    results: dict[int, Any] = {}
    for kind, apply in _APPLIERS:
        indexes = [i for i, write in enumerate(writes) if isinstance(write, kind)]
        if indexes:
            outcomes = apply(conn, [writes[i] for i in indexes])
            results.update(zip(indexes, outcomes, strict=True))
    return [results[i] for i in range(len(writes))]


_APPLIERS: tuple[tuple[type, Callable[[Connection, Any], list[Any]]], ...] = (
    (StoredTask, _insert_batch),
    (_Start, _start_batch),
    (_Finish, _finish_batch),
)


async def _write(db: Database, write: _Write) -> Any:
    """Submits one hot write to the database's group commit."""
    return await _batched(db, "writes", write, _write_batch, write=True)


_GROUPS: "WeakKeyDictionary[Database, dict[str, GroupCommit[Any, Any]]]" = WeakKeyDictionary()


async def _batched(
    db: Database,
    name: str,
    item: Any,
    apply: Callable[[Connection, Sequence[Any]], list[Any]],
    *,
    write: bool,
) -> Any:
    """Submits `item` to the database's group `name`: what is submitted meanwhile is applied
    together by one `apply(conn, items)`, in one write transaction or one read."""
    groups = _GROUPS.setdefault(db, {})
    group = groups.get(name)
    if group is None:
        run = db.write if write else db.read

        async def together(items: Sequence[Any]) -> list[Any]:
            return await run(lambda conn: apply(conn, items))

        group = groups[name] = GroupCommit(together, max_batch=MAX_BATCH, name=name)
    return await group.submit(item)


# ----- cancel ----------------------------------------------------------------------------


async def cancel_pending(db: Database, *, task_id: str, replica: str) -> bool:
    """pending -> cancelled; False when the task is not pending (any more)."""
    statement = (
        update(tasks)
        .where(tasks.c.task_id == task_id, tasks.c.status == TaskStatus.PENDING.value)
        .values(
            status=TaskStatus.CANCELLED.value,
            cancel_requested=True,
            error="cancelled before it started",
            finished_at=utcnow(),
        )
        .returning(tasks.c.attempt)
    )
    row = await db.write(
        lambda conn: _transition(
            conn,
            statement,
            task_id=task_id,
            from_status=TaskStatus.PENDING,
            to_status=TaskStatus.CANCELLED,
            replica=replica,
        )
    )
    return row is not None


async def request_cancel(db: Database, *, task_id: str) -> bool:
    """Records a cancel so whoever runs the task honours it; False if already finished."""
    statement = (
        update(tasks)
        .where(tasks.c.task_id == task_id, tasks.c.status.in_(UNFINISHED_VALUES))
        .values(cancel_requested=True)
    )
    rowcount = await db.write(lambda conn: conn.execute(statement).rowcount)
    return bool(rowcount == 1)


# ----- ownership: leases, progress, takeover, hand-back ----------------------------------


@dataclass(frozen=True, slots=True)
class Renewal:
    held: frozenset[str]  # unfinished tasks the owner still holds
    cancel_asked: frozenset[str]  # among them, those whose cancel was asked
    cancelled: tuple[tuple[str, int], ...] = ()  # (task_id, attempt) of pending ones it ended


def _set_lease(conn: Connection, replica_id: str, lease_until: datetime) -> None:
    renewed = conn.execute(
        update(replicas)
        .where(replicas.c.replica_id == replica_id)
        .values(lease_expires_at=lease_until)
    )
    if renewed.rowcount == 0:
        conn.execute(insert(replicas).values(replica_id=replica_id, lease_expires_at=lease_until))


async def renew_lease(db: Database, *, replica_id: str, lease_until: datetime) -> Renewal:
    """Extends the replica's hold on all its unfinished tasks (one row, whatever their
    number). What it no longer holds was taken over; a cancel it missed is in
    `cancel_asked`, and its pending tasks whose cancel was asked end cancelled here. A
    takeover of its tasks holds the row's lock, so a renewal that races it waits and then
    sees the tasks gone."""
    held_query = select(tasks.c.task_id, tasks.c.cancel_requested).where(
        tasks.c.owner == replica_id, tasks.c.status.in_(UNFINISHED_VALUES)
    )

    def renew(conn: Connection) -> tuple[list[StoredTask], list[Any]]:
        _set_lease(conn, replica_id, lease_until)
        mine = tasks.c.owner == replica_id
        cancelled = _cancel_asked_pending(conn, mine, replica=replica_id)
        return cancelled, list(conn.execute(held_query).all())

    cancelled, rows = await db.write(renew)
    return Renewal(
        held=frozenset(task_id for task_id, _ in rows),
        cancel_asked=frozenset(task_id for task_id, asked in rows if asked),
        cancelled=tuple((task.task_id, task.attempt) for task in cancelled),
    )


async def join(db: Database, *, replica_id: str, lease_until: datetime) -> None:
    """Takes the replica's lease before it owns any task, and forgets replicas whose lease
    lapsed and who hold nothing any more (each replica that starts tidies up once)."""

    def enter(conn: Connection) -> None:
        conn.execute(delete(replicas).where(_lapsed(), ~_owns_unfinished()))
        _set_lease(conn, replica_id, lease_until)

    await db.write(enter)


def _lapsed() -> Any:
    return replicas.c.lease_expires_at < utcnow()


def _owns_unfinished() -> Any:
    return exists().where(
        tasks.c.owner == replicas.c.replica_id, tasks.c.status.in_(UNFINISHED_VALUES)
    )


_SAVE_PROGRESS = (
    update(tasks)
    .where(
        tasks.c.task_id == bindparam("b_task_id"),
        tasks.c.owner == bindparam("b_owner"),
        tasks.c.status == TaskStatus.RUNNING.value,
    )
    .values(progress=bindparam("b_progress"), poll_failures=bindparam("b_poll_failures"))
)


async def save_progress(
    db: Database, *, owner: str, progress_by_task: Iterable[tuple[str, int, int]]
) -> None:
    """Persists (task_id, progress, poll_failures) of running tasks in one transaction."""
    params = [
        {"b_task_id": task_id, "b_owner": owner, "b_progress": progress, "b_poll_failures": fails}
        for task_id, progress, fails in sorted(progress_by_task)
    ]
    if params:
        await db.write(lambda conn: conn.execute(_SAVE_PROGRESS, params))


async def expired_tasks(db: Database, *, limit: int = 500) -> Sequence[StoredTask]:
    """Unfinished tasks that nobody holds: handed back, or owned by a replica whose lease
    lapsed (or that has no lease at all)."""
    live_replicas = select(replicas.c.replica_id).where(~_lapsed())
    query = (
        select(tasks)
        .where(
            tasks.c.status.in_(UNFINISHED_VALUES),
            or_(tasks.c.owner.is_(None), tasks.c.owner.not_in(live_replicas)),
        )
        .order_by(tasks.c.created_at)
        .limit(limit)
    )
    rows = await db.read(lambda conn: conn.execute(query).mappings().all())
    return [_task(row) for row in rows]


def _same_holder(task: StoredTask) -> Any:
    """Compare-and-set guard: the row is still as the sweeper saw it, its cancel flag too
    (a cancel asked since is honoured by the next sweep, never dropped by this one)."""
    owner = tasks.c.owner.is_(None) if task.owner is None else tasks.c.owner == task.owner
    return and_(
        tasks.c.task_id == task.task_id,
        tasks.c.status == task.status.value,
        tasks.c.attempt == task.attempt,
        tasks.c.cancel_requested.is_(task.cancel_requested),
        owner,
    )


def _still_lapsed(conn: Connection, owners: set[str]) -> set[str]:
    """Of these owners, those whose lease is still lapsed (or absent); their lease rows stay
    locked until the takeover commits, so none of them renews in between."""
    rows = conn.execute(
        select(replicas.c.replica_id, _lapsed().label("lapsed"))
        .where(replicas.c.replica_id.in_(sorted(owners)))
        .order_by(replicas.c.replica_id)
        .with_for_update()
    ).all()
    return owners - {replica_id for replica_id, lapsed in rows if not lapsed}


@dataclass(frozen=True, slots=True)
class Takeover:
    """What becomes of one abandoned task: its new status and the columns that change."""

    task: StoredTask  # as the sweeper saw it
    to_status: TaskStatus
    values: dict[str, Any]


async def take_over(db: Database, *, plans: Sequence[Takeover], replica: str) -> list[Takeover]:
    """Applies, in one transaction, every plan whose task is still exactly as it was seen
    (compare-and-set on status, attempt, owner and cancel flag) and whose owner's lease is
    still lapsed; returns the plans applied. Forgets the lapsed replicas left holding nothing."""

    def apply(conn: Connection) -> list[Takeover]:
        owners = {plan.task.owner for plan in plans if plan.task.owner is not None}
        lapsed = _still_lapsed(conn, owners) if owners else set()
        applied = []
        for plan in sorted(plans, key=lambda plan: plan.task.task_id):
            if plan.task.owner is not None and plan.task.owner not in lapsed:
                continue  # its replica renewed meanwhile: it still runs the task
            statement = (
                update(tasks)
                .where(_same_holder(plan.task))
                .values(status=plan.to_status.value, **plan.values)
                .returning(tasks.c.attempt)
            )
            if _transition(
                conn,
                statement,
                task_id=plan.task.task_id,
                from_status=plan.task.status,
                to_status=plan.to_status,
                replica=replica,
            ):
                applied.append(plan)
        if lapsed:
            conn.execute(
                delete(replicas).where(replicas.c.replica_id.in_(lapsed), ~_owns_unfinished())
            )
        return applied

    return await db.write(apply)


async def release_all(db: Database, *, owner: str) -> int:
    """Hands the owner's unfinished tasks back (pending, no holder) for anyone to take now,
    and gives up the owner's lease."""
    mine = and_(tasks.c.owner == owner, tasks.c.status.in_(UNFINISHED_VALUES))

    def release(conn: Connection) -> int:
        held = conn.execute(
            select(tasks.c.task_id, tasks.c.status, tasks.c.attempt).where(mine)
        ).all()
        conn.execute(update(tasks).where(mine).values(status=TaskStatus.PENDING.value, owner=None))
        _log(
            conn,
            [
                (task_id, TaskStatus(status), TaskStatus.PENDING, owner, attempt)
                for task_id, status, attempt in held
            ],
        )
        conn.execute(delete(replicas).where(replicas.c.replica_id == owner))
        return len(held)

    return await db.write(release)


def lease_deadline(lease_s: float) -> datetime:
    return utcnow() + timedelta(seconds=lease_s)
