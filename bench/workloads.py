"""The workloads. Each measurement starts its systems fresh, drives them from a separate
load-generator process, and returns plain figures; runs alternate between the systems so
that drift in the machine hits all of them alike."""

import json
import statistics
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import redis

from bench import systems
from bench.load import percentile
from bench.procs import LOGS, VAR

Result = dict[str, Any]
NOOP = {"algorithm": "hello", "input": {"duration_ms": 0}}


@dataclass(frozen=True)
class Profile:
    name: str
    runs: int
    create_s: float
    e2e_tasks: int
    sleep_tasks: int
    scale_tasks: int
    scale_duration_ms: int
    scale_window_s: float
    notice_tasks: int
    cancel_tasks: int
    # Caps that keep the whole run bounded: a system slower than this is measured on what
    # it finished by then (tasks/s stays meaningful; the table says it did not finish).
    tasks_timeout_s: float
    scale_fill_timeout_s: float
    connections: int = 64


QUICK = Profile("quick", 1, 3.0, 500, 200, 500, 15_000, 4.0, 20, 300, 40.0, 8.0)
# The scale fill is capped below the task duration, so what was created is still in flight.
FULL = Profile("full", 3, 10.0, 5000, 2000, 10_000, 30_000, 8.0, 200, 2000, 40.0, 20.0)
CANCEL_CONNECTIONS = 32


def load(mode: str, url: str, body: Any, *, timeout_s: float, **options: Any) -> Result:
    """Runs the load generator in its own process; its JSON answer."""
    command = [str(systems.BENCH_PYTHON), "-m", "bench.load", mode, "--url", url]
    command += ["--body", json.dumps(body)]
    if mode in ("tasks", "cancel"):
        command += ["--timeout-s", str(timeout_s)]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        command += [flag] if value is True else [flag, str(value)]
    with (LOGS / "load.log").open("ab") as stderr:
        done = subprocess.run(
            command,
            cwd=systems.ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            timeout=timeout_s + 60,
            check=True,
        )
    result: Result = json.loads(done.stdout)
    return result


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ----- 1 + 2: ceiling and create ------------------------------------------------------------


def create(profile: Profile, postgres_admin_url: str | None) -> Result:
    """req/s, p50, p99 of POST /v1/tasks for each system, `runs` times, alternating."""
    runs: dict[str, list[Result]] = {}
    notes: list[str] = []
    with systems.postgres_database(postgres_admin_url or "postgresql://-") as pg_url:
        if postgres_admin_url and pg_url is None:
            notes.append(f"PostgreSQL at {postgres_admin_url} unreachable: its row is skipped")
        starters: list[tuple[str, Any]] = [
            ("ceiling (bare FastAPI)", systems.ceiling),
            ("taskbeat SQLite + embedded Redis", lambda: _tb("create-sqlite", own_redis=False)),
        ]
        if pg_url is not None:
            starters.append(
                ("taskbeat PostgreSQL + Redis", lambda: _tb("create-pg", database_url=pg_url))
            )
        if systems.peers_available():
            starters += [
                ("FastAPI + SAQ", lambda: systems.peer("saq")),
                ("FastAPI + arq", lambda: systems.peer("arq")),
            ]
        for _ in range(profile.runs):
            for label, start in starters:
                with start() as system:
                    figures = load(
                        "rate",
                        system.create_url,
                        NOOP,
                        timeout_s=profile.create_s + 30,
                        connections=profile.connections,
                        duration_s=profile.create_s,
                    )
                runs.setdefault(label, []).append(figures)
    return {"runs": runs, "notes": notes}


def _tb(name: str, **options: Any) -> Any:
    return systems.taskbeat(name, **options)


# ----- 3: end to end -----------------------------------------------------------------------


def _tasks(system: Any, body: Any, count: int, profile: Profile) -> Result:
    """Creates `count` tasks on the system and waits until all finished (bench.load tasks)."""
    return load(
        "tasks",
        system.create_url,
        body,
        timeout_s=profile.tasks_timeout_s,
        count=count,
        connections=profile.connections,
    )


def end_to_end(profile: Profile) -> Result:
    """N no-op tasks created by 64 clients and polled until all succeeded: tasks/s."""
    starters: list[tuple[str, Any]] = [("taskbeat", lambda: _tb("e2e"))]
    if systems.peers_available():
        starters += [
            ("FastAPI + SAQ", lambda: systems.peer("saq")),
            ("FastAPI + arq", lambda: systems.peer("arq")),
        ]
    runs: dict[str, list[Result]] = {}
    for _ in range(profile.runs):
        for label, start in starters:
            with start() as system:
                figures = _tasks(system, NOOP, profile.e2e_tasks, profile)
            figures.pop("finals", None)
            runs.setdefault(label, []).append(figures)
    return {"runs": runs}


# ----- 4: sleep ----------------------------------------------------------------------------


def sleep(profile: Profile) -> Result:
    """N tasks of 500 ms in flight together: time until all done, against the ideal (the
    create phase plus 500 ms)."""
    body = {"algorithm": "hello", "input": {"duration_ms": 500}}
    runs: list[Result] = []
    for _ in range(profile.runs):
        with _tb("sleep") as system:
            figures = _tasks(system, body, profile.sleep_tasks, profile)
        figures.pop("finals", None)
        figures["ideal_s"] = figures["create_phase_s"] + 0.5
        runs.append(figures)
    return {"runs": runs}


# ----- 5: scale ----------------------------------------------------------------------------


def _heartbeat_ages(client: "redis.Redis") -> list[float]:
    now = time.time()
    beats = client.zrange("taskbeat:heartbeats", 0, -1, withscores=True)
    return [max(0.0, now - score) for _, score in beats]


def _commandstats(client: "redis.Redis") -> dict[str, int]:
    info = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in info.items()}


def _trips_in(path: Path, start: float, end: float) -> list[tuple[float, str, list[str]]]:
    """The service's Redis round trips (bench.counted_serve) sent between start and end."""
    trips = json.loads(path.read_text()) if path.exists() else []
    return [(at, sender, names) for at, sender, names in trips if start <= at < end]


def _per_tick(trips: list[tuple[float, str, list[str]]], ticks: float) -> Result:
    """Round trips and commands per heartbeat tick, all and by the code that sent them."""
    by_sender: dict[str, list[int]] = {}
    commands: dict[str, int] = {}
    for _, sender, names in trips:
        counts = by_sender.setdefault(sender, [0, 0])
        counts[0] += 1
        counts[1] += len(names)
        for name in names:
            commands[name] = commands.get(name, 0) + 1
    heartbeat = [t for t in trips if "runner.heartbeat:" in t[1]]
    return {
        "trips_per_tick": len(trips) / ticks,
        "heartbeat_trips_per_tick": len(heartbeat) / ticks,
        "heartbeat_commands_per_tick": sum(len(t[2]) for t in heartbeat) / ticks,
        "client_commands_per_tick": sum(commands.values()) / ticks,
        "client_commands_breakdown_per_tick": {k: v / ticks for k, v in sorted(commands.items())},
        "trips_by_sender_per_tick": {
            sender: {"trips": n / ticks, "commands": c / ticks}
            for sender, (n, c) in sorted(by_sender.items(), key=lambda item: -item[1][0])
        },
    }


def scale(profile: Profile) -> Result:
    """N long tasks of 10 steps in flight in one replica: RSS, threads, heartbeat ages, loop
    lag, CPU, the Redis round trips and commands per heartbeat tick counted at the service's
    client; and the same with 1 step (no progress until the end) for the CPU cost of progress.
    """
    runs: list[Result] = []
    for _ in range(profile.runs):
        for steps in SCALE_STEPS:
            runs.append(_scale_once(profile, steps))
    return {"runs": runs}


SCALE_STEPS = (10, 1)


def _scale_once(profile: Profile, steps: int) -> Result:
    body = {
        "algorithm": "hello",
        "input": {"duration_ms": profile.scale_duration_ms, "steps": steps},
    }
    env = {"TASKBEAT_MAX_ACTIVE": str(profile.scale_tasks)}
    trips_path = VAR / f"redis-trips-{steps}.json"
    trips_path.unlink(missing_ok=True)
    with _tb("scale", env=env, redis_trips=trips_path) as system:
        assert system.redis_url is not None
        assert system.service_pid is not None
        client = redis.Redis.from_url(system.redis_url, decode_responses=True)
        created = load(
            "tasks",
            system.create_url,
            body,
            timeout_s=profile.scale_fill_timeout_s,
            count=profile.scale_tasks,
            connections=profile.connections,
            no_wait=True,
        )
        stats_url = f"{system.base_url}/v1/stats"
        deadline = time.monotonic() + 30
        running = 0
        while time.monotonic() < deadline:
            replica = get_json(stats_url)["replica"]
            running = int(replica["running"])
            if int(replica["waiting"]) == 0:
                break
            time.sleep(0.2)
        lag_after_burst = get_json(stats_url)["event_loop_lag_ms"]
        # Let the burst leave the lag window (10 s) before the steady-state window.
        time.sleep(2.5)
        service = psutil.Process(system.service_pid)
        ages = _heartbeat_ages(client)
        before = _commandstats(client)
        cpu_before = sum(service.cpu_times()[:2])
        window_start, wall_start = time.monotonic(), time.time()
        time.sleep(profile.scale_window_s)
        window_s, wall_end = time.monotonic() - window_start, time.time()
        cpu_s = sum(service.cpu_times()[:2]) - cpu_before
        after = _commandstats(client)
        ages += _heartbeat_ages(client)
        stats = get_json(stats_url)
        rss_mb = service.memory_info().rss / 2**20
        threads = service.num_threads()
        client.close()
    ticks = window_s / 2.0  # TASKBEAT_HEARTBEAT_INTERVAL_S
    ours = {"info"}  # the bench's own calls inside the window
    deltas = {
        name: calls - before.get(name, 0)
        for name, calls in after.items()
        if name not in ours and calls - before.get(name, 0) > 0
    }
    return {
        "steps": steps,
        "tasks": profile.scale_tasks,
        "created": created["created"],
        "running": running,
        "create_rps": created["tasks_per_s"],
        "rss_mb": rss_mb,
        "threads": threads,
        "cpu_percent": 100 * cpu_s / window_s,
        "heartbeat_age_p99_s": percentile(ages, 0.99),
        "heartbeat_age_max_s": max(ages, default=0.0),
        "lag": stats["event_loop_lag_ms"],
        "lag_after_burst": lag_after_burst,
        "ticks": ticks,
        "commands_per_tick": sum(deltas.values()) / ticks,
        "command_breakdown_per_tick": {k: v / ticks for k, v in sorted(deltas.items())},
        **_per_tick(_trips_in(trips_path, wall_start, wall_end), ticks),
    }


# ----- 6: notice ---------------------------------------------------------------------------


def notice(profile: Profile) -> Result:
    """For N tasks of 1 s: the notice latency the service measured (the C library's own
    finish time of each job -> its final write committed: `notice_latency_ms` on /v1/stats),
    and finished_at - started_at - 1 s from its rows (an upper bound). The poll interval is
    left at 3 s, so only the library's notification can make either small."""
    body = {"algorithm": "hello", "input": {"duration_ms": 1000}}
    runs: list[Result] = []
    for _ in range(profile.runs):
        with _tb("notice") as system:
            figures = _tasks(system, body, profile.notice_tasks, profile)
            measured = get_json(f"{system.base_url}/v1/stats")["notice_latency_ms"]
        delays_ms = [
            (
                datetime.fromisoformat(task["finished_at"])
                - datetime.fromisoformat(task["started_at"])
            ).total_seconds()
            * 1000
            - 1000
            for task in figures["finals"]
            if task.get("status") == "succeeded"
        ]
        runs.append(
            {
                "tasks": profile.notice_tasks,
                "succeeded": figures["succeeded"],
                "p50_ms": measured["p50"],
                "p99_ms": measured["p99"],
                "max_ms": measured["max"],
                "samples": measured["samples"],
                "rows_p50_ms": percentile(delays_ms, 0.50),
                "rows_p99_ms": percentile(delays_ms, 0.99),
                "rows_max_ms": max(delays_ms, default=0.0),
            }
        )
    return {"runs": runs}


# ----- 7: cancel ---------------------------------------------------------------------------


def cancel(profile: Profile) -> Result:
    """N long tasks created by 32 clients, then each cancelled by 32 clients once all run:
    both phases timed, and their ratio within the run."""
    body = {"algorithm": "hello", "input": {"duration_ms": 600_000}}
    runs: list[Result] = []
    for _ in range(profile.runs):
        with _tb("cancel") as system:
            runs.append(
                load(
                    "cancel",
                    system.create_url,
                    body,
                    timeout_s=profile.tasks_timeout_s,
                    count=profile.cancel_tasks,
                    connections=CANCEL_CONNECTIONS,
                )
            )
    return {"runs": runs}
