"""`taskbeat heartbeats`: the health monitor's view, read straight from Redis (no API).

Lists the running tasks with the age of their last heartbeat and their replica, and flags
as STALE those silent for longer than a replica's lease (TASKBEAT_LEASE_S, by default
TASKBEAT_STALE_AFTER_INTERVALS heartbeat intervals): just when the service itself moves
them on. Exits like a Nagios or Kubernetes check: 0 healthy, 2 some task stale, 3 Redis
unreachable (or not configured).

With no TASKBEAT_REDIS_URL it reads the embedded Redis of a `taskbeat serve` run from the
same directory, at its socket beside the SQLite file (var/redis.sock). When that service
is gone, the tasks the database still shows as running have no heartbeat at all: stale.
"""

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from app.cli.exits import EXIT_OK, EXIT_STALE, EXIT_UNREACHABLE
from app.cli.output import emit_json, print_table
from app.core.config import Settings
from app.core.faults import REDIS_AWAY
from app.core.redis import create_sync_client
from app.domain.heartbeats import is_stale
from app.live.keys import RedisKeys
from app.store.offline import running_task_ids

if TYPE_CHECKING:
    from app.cli.api import SubCommands

REDIS_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class TaskBeat:
    task_id: str
    heartbeat_at: float
    heartbeat_age_s: float
    progress: int | None
    replica: str | None
    replica_age_s: float | None
    stale: bool


def read_beats(client: "redis.Redis", keys: RedisKeys, *, stale_after_s: float) -> list[TaskBeat]:
    """Every task in the heartbeat set, oldest beat first, in one round trip."""
    pipe = client.pipeline(transaction=False)
    pipe.zrange(keys.heartbeats, 0, -1, withscores=True)
    pipe.hgetall(keys.progress)
    pipe.hgetall(keys.task_replica)
    pipe.zrange(keys.replicas, 0, -1, withscores=True)
    beats, progress, task_replica, replicas = pipe.execute()
    now = time.time()
    replica_beat = dict(replicas)
    found = []
    for task_id, beat in beats:
        replica = task_replica.get(task_id)
        replica_at = replica_beat.get(replica)
        found.append(
            TaskBeat(
                task_id=task_id,
                heartbeat_at=beat,
                heartbeat_age_s=round(now - beat, 1),
                progress=int(progress[task_id]) if task_id in progress else None,
                replica=replica,
                replica_age_s=None if replica_at is None else round(now - replica_at, 1),
                stale=is_stale(beat_at_s=beat, now_s=now, stale_after_s=stale_after_s),
            )
        )
    return sorted(found, key=lambda task: task.heartbeat_at)


def stale_after_s(settings: Settings, interval_s: float | None) -> float:
    """How long a task may go without a beat: the replica's lease, as the service counts it
    (`--interval-s` stands in for TASKBEAT_HEARTBEAT_INTERVAL_S)."""
    if interval_s is not None:
        settings = settings.model_copy(update={"heartbeat_interval_s": interval_s})
    return settings.lease_duration_s


def _print_human(beats: list[TaskBeat]) -> None:
    if not beats:
        return
    print_table(
        ("TASK_ID", "HEARTBEAT_AGE_S", "PROGRESS", "REPLICA", "REPLICA_AGE_S", "STATE"),
        [
            (
                b.task_id,
                f"{b.heartbeat_age_s:.1f}",
                None if b.progress is None else f"{b.progress}%",
                b.replica,
                None if b.replica_age_s is None else f"{b.replica_age_s:.1f}",
                "STALE" if b.stale else "ok",
            )
            for b in beats
        ],
    )


def _tasks(count: int) -> str:
    return f"{count} task" if count == 1 else f"{count} tasks"


def _summary(beats: list[TaskBeat], stale_after_s: float) -> str:
    stale = [b for b in beats if b.stale]
    if stale:
        return (
            f"STALE: {len(stale)} of {_tasks(len(beats))} running without a heartbeat for over "
            f"{stale_after_s:g} s: {', '.join(b.task_id for b in stale)}"
        )
    return f"OK: {_tasks(len(beats))} running, every heartbeat within {stale_after_s:g} s"


def heartbeats(args: argparse.Namespace) -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"UNKNOWN: bad configuration: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    limit_s = stale_after_s(settings, args.interval_s)
    redis_url = args.redis_url or settings.redis_url
    if not redis_url:
        embedded_socket = settings.embedded_redis_socket_path
        if not embedded_socket.exists():
            return _without_service(settings, embedded_socket, limit_s, as_json=args.json)
        redis_url = f"unix://{embedded_socket}"
    keys = RedisKeys(args.redis_prefix if args.redis_prefix is not None else settings.redis_prefix)
    client = create_sync_client(redis_url, timeout_s=REDIS_TIMEOUT_S)
    try:
        beats = read_beats(client, keys, stale_after_s=limit_s)
    except REDIS_AWAY as exc:
        print(f"UNKNOWN: cannot read Redis at {redis_url}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        client.close()
    return _report(beats, limit_s, as_json=args.json)


def _without_service(
    settings: Settings, embedded_socket: Path, stale_after_s: float, *, as_json: bool
) -> int:
    """No embedded Redis here: the SQLite store tells whether a service died mid-run."""
    database = settings.sqlite_path
    try:
        orphaned = running_task_ids(settings) if database and database.exists() else []
    except SQLAlchemyError:
        orphaned = []  # not migrated yet: nothing ever ran here
    if not orphaned:
        print(
            f"UNKNOWN: no Redis to read: no `taskbeat serve` is running here ({embedded_socket} "
            "is absent); set TASKBEAT_REDIS_URL or --redis-url for a shared Redis",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    summary = (
        f"STALE: no `taskbeat serve` is running here ({embedded_socket} is absent), and "
        f"{_tasks(len(orphaned))} it left running have no heartbeat: {', '.join(orphaned)}"
    )
    if as_json:
        body = {"ok": False, "stale_after_s": stale_after_s, "orphaned": orphaned}
        emit_json({**body, "summary": summary})
    else:
        print(summary)
    return EXIT_STALE


def _report(beats: list[TaskBeat], limit_s: float, *, as_json: bool) -> int:
    summary = _summary(beats, limit_s)
    if as_json:
        body: dict[str, Any] = {
            "ok": not any(b.stale for b in beats),
            "stale_after_s": limit_s,
            "tasks": [asdict(b) for b in beats],
            "summary": summary,
        }
        emit_json(body)
    else:
        _print_human(beats)
        print(summary)
    return EXIT_STALE if any(b.stale for b in beats) else EXIT_OK


def add_command(commands: "SubCommands") -> None:
    """Adds `heartbeats` to the `taskbeat` parser."""
    parser = commands.add_parser(
        "heartbeats",
        help="running tasks and their heartbeats, from Redis; exit 2 if any is stale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--redis-url", help="default TASKBEAT_REDIS_URL")
    parser.add_argument("--redis-prefix", help="default TASKBEAT_REDIS_PREFIX")
    parser.add_argument(
        "--interval-s",
        type=float,
        help="heartbeat interval (default TASKBEAT_HEARTBEAT_INTERVAL_S), for a lease of "
        "TASKBEAT_STALE_AFTER_INTERVALS of them when TASKBEAT_LEASE_S is unset",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=heartbeats)
