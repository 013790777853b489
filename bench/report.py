"""Turns the measured figures into docs/benchmarks.md and a PNG chart of the ratios."""

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import systems
from bench.workloads import median

SERVICE_PACKAGES = [
    *("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic", "sqlalchemy"),
    *("aiosqlite", "asyncpg", "redis", "anyio", "orjson", "aiohttp"),
]
PEER_PACKAGES = ["saq", "arq", "redis", "hiredis", "fastapi", "uvicorn"]
TASKBEAT = "taskbeat"
# Everything below this line in an existing report (hand-written findings) is kept.
NOTES_MARKER = "<!-- notes: kept by make bench -->"


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{mem_kb / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        memory = "unknown"
    versions = {name: _version(name) for name in SERVICE_PACKAGES}
    peers = "not installed"
    peer_python = systems.PEERS_BIN / "python"
    if peer_python.exists():
        script = (
            "from importlib import metadata as m;"
            f"print(', '.join(f'{{n}} {{m.version(n)}}' for n in {PEER_PACKAGES!r}))"
        )
        peers = subprocess.run(
            [str(peer_python), "-c", script], capture_output=True, text=True, timeout=60
        ).stdout.strip()
    from app.core.redis import find_redis_server

    redis_version = subprocess.run(
        [find_redis_server(), "--version"], capture_output=True, text=True, timeout=10
    ).stdout.split()
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "memory": memory,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "service packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
        "peer packages (own venv)": peers,
        "redis-server": " ".join(redis_version[:3]),
        "load average at the end (1/5/15 min)": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def _ratio(runs: dict[str, list[dict[str, Any]]], top: str, bottom: str, key: str) -> float:
    """The median over runs of top/bottom, each ratio taken within one run."""
    pairs = zip(runs.get(top, []), runs.get(bottom, []), strict=False)
    return median([a[key] / b[key] for a, b in pairs if b[key]])


def _fmt(value: float, digits: int = 0) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"  # NaN check


def _met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _scale_runs(results: dict[str, Any], steps: int) -> list[dict[str, Any]]:
    return [r for r in _runs(results, "scale") if r.get("steps", 10) == steps]


def _runs(results: dict[str, Any], workload: str) -> Any:
    """A workload's runs; empty when this report's run left it out (`--only`)."""
    return results.get(workload, {}).get("runs", [])


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Medians, ratios and target verdicts (NaN where a figure is missing)."""
    create = _runs(results, "create") or {}
    ceiling = "ceiling (bare FastAPI)"
    sqlite = "taskbeat SQLite + embedded Redis"
    e2e = _runs(results, "end_to_end") or {}
    scale = _scale_runs(results, 10)
    notice = _runs(results, "notice")
    summary = {
        "create_vs_ceiling": _ratio(create, sqlite, ceiling, "rps"),
        "create_p99_ms": median([r["p99_ms"] for r in create.get(sqlite, [])]),
        "e2e_vs_saq": _ratio(e2e, TASKBEAT, "FastAPI + SAQ", "tasks_per_s"),
        "e2e_vs_arq": _ratio(e2e, TASKBEAT, "FastAPI + arq", "tasks_per_s"),
        "rss_mb": median([r["rss_mb"] for r in scale]),
        "threads": median([r["threads"] for r in scale]),
        "hb_age_p99_s": median([r["heartbeat_age_p99_s"] for r in scale]),
        "lag_p99_ms": median([r["lag"]["p99"] for r in scale]),
        "heartbeat_trips_per_tick": median([r["heartbeat_trips_per_tick"] for r in scale]),
        "heartbeat_commands_per_tick": median([r["heartbeat_commands_per_tick"] for r in scale]),
        "progress_cpu_percent": median([r["cpu_percent"] for r in scale])
        - median([r["cpu_percent"] for r in _scale_runs(results, 1)]),
        "notice_p99_ms": median([r["p99_ms"] for r in notice]),
        "cancel_vs_create": median([r["ratio"] for r in _runs(results, "cancel")]),
    }
    return summary


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    create = results["create"]["runs"]
    e2e = results["end_to_end"]["runs"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = list(create)
    values = [_ratio(create, name, names[0], "rps") for name in names]
    left.barh(names, values, color=["#999"] + ["#2a7"] * (len(names) - 1))
    left.axvline(0.5, color="#c33", linestyle="--", label="target 0.5x (SQLite)")
    left.set_xlabel("creates/s relative to the bare FastAPI ceiling (median)")
    left.invert_yaxis()
    left.legend(loc="lower right")
    for index, value in enumerate(values):
        left.text(value, index, f" {value:.2f}x", va="center")
    e2e_names = list(e2e)
    rates = [median([r["tasks_per_s"] for r in e2e[n]]) for n in e2e_names]
    right.bar(e2e_names, rates, color=["#2a7"] + ["#777"] * (len(e2e_names) - 1))
    right.set_ylabel("no-op tasks/s end to end (median)")
    for index, value in enumerate(rates):
        right.text(index, value, f"{value:,.0f}", ha="center", va="bottom")
    figure.suptitle("taskbeat against the ceiling and the peers, measured in one run")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(results: dict[str, Any], path: Path, *, command: str, elapsed_s: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    chart_path = path.with_suffix(".png")
    charted = "create" in results and "end_to_end" in results
    if charted:
        chart(results, chart_path)
    path.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    s = summarise(results)
    profile = results["profile"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}` (profile `{profile['name']}`, {elapsed_s / 60:.1f} min). "
        f"Every figure is the median of {profile['runs']} run(s); every ratio is taken "
        "within one run (the systems alternate run by run) and the median of those ratios "
        "is shown. Absolute figures move by about 10 % between runs of the same machine; "
        "only the ratios mean much.",
        "",
        *([f"![ratios]({chart_path.name})", ""] if charted else []),
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in results["machine"].items()],
        "",
        "## How it is measured",
        "",
        "- Load comes from `bench/load.py` (aiohttp on uvloop) in its own process, "
        f"{profile['connections']} connections. Every measurement starts its systems fresh "
        "(new SQLite file or database, new redis-server) and stops them by PID afterwards.",
        "- Every server is one uvicorn worker with uvloop and httptools, log level warning "
        "(no access log); taskbeat is `.venv/bin/taskbeat serve` with `TASKBEAT_*` settings "
        "otherwise at their defaults (`POLL_INTERVAL_S=3`, `HEARTBEAT_INTERVAL_S=2`).",
        "- The peers are FastAPI apps in front of SAQ and arq (`bench/peers/`), each worker "
        "in its own process with no-op jobs (SAQ concurrency 100; arq max_jobs 500 and its "
        "default 0.5 s poll), completion read through the peer's own job status by "
        "`GET /v1/tasks/{id}`, exactly as for taskbeat. They run from their own virtualenv "
        "because arq pins redis<6.",
        "",
    ]
    lines += _targets(s)
    sections = {
        "create": _create_section,
        "end_to_end": _e2e_section,
        "sleep": _sleep_section,
        "scale": _scale_section,
        "notice": _notice_section,
        "cancel": _cancel_section,
    }
    for workload, section in sections.items():
        if workload in results:  # `--only` runs some
            lines += section(results)
    kept = ""
    if path.exists() and NOTES_MARKER in (old := path.read_text()):
        kept = old[old.index(NOTES_MARKER) :]
    path.write_text("\n".join(lines).rstrip() + "\n\n" + (kept or NOTES_MARKER + "\n"))


def _targets(s: dict[str, Any]) -> list[str]:
    rows = [
        ("Create on SQLite ≥ 0.5x the ceiling", f"{s['create_vs_ceiling']:.2f}x",
         s["create_vs_ceiling"] >= 0.5),
        ("Create p99 ≤ 50 ms", f"{s['create_p99_ms']:.1f} ms", s["create_p99_ms"] <= 50),
        ("End to end ≥ 1.5x FastAPI + SAQ", f"{s['e2e_vs_saq']:.2f}x", s["e2e_vs_saq"] >= 1.5),
        ("End to end ≥ 5x FastAPI + arq", f"{s['e2e_vs_arq']:.2f}x", s["e2e_vs_arq"] >= 5),
        ("Scale: RSS ≤ 500 MB", f"{s['rss_mb']:.0f} MB", s["rss_mb"] <= 500),
        ("Scale: ≤ 64 threads", f"{s['threads']:.0f}", s["threads"] <= 64),
        ("Scale: heartbeat age p99 ≤ 3 s", f"{s['hb_age_p99_s']:.2f} s",
         s["hb_age_p99_s"] <= 3),
        ("Scale: event-loop lag p99 ≤ 20 ms", f"{s['lag_p99_ms']:.1f} ms",
         s["lag_p99_ms"] <= 20),
        ("Scale: ≤ 2 Redis round trips per heartbeat tick",
         f"{s['heartbeat_trips_per_tick']:.1f} round trips, "
         f"{s['heartbeat_commands_per_tick']:.1f} commands (counted at the client)",
         s["heartbeat_trips_per_tick"] <= 2),
        ("Notice p99 ≤ 50 ms", f"{s['notice_p99_ms']:.1f} ms", s["notice_p99_ms"] <= 50),
        ("Cancels take ≤ 1.5x the creates", f"{s['cancel_vs_create']:.2f}x",
         s["cancel_vs_create"] <= 1.5),
    ]  # fmt: skip
    out = ["## Targets", "", "| target | measured (median) | verdict |", "|---|---|---|"]
    out += [
        f"| {name} | {value} | {_met(ok)} |"
        for name, value, ok in rows
        if not value.startswith("nan")  # NaN: a workload this run left out (--only)
    ]
    return [*out, ""]


def _create_section(results: dict[str, Any]) -> list[str]:
    runs = results["create"]["runs"]
    ceiling = "ceiling (bare FastAPI)"
    out = [
        "## 1-2. Ceiling and create",
        "",
        f'`POST /v1/tasks` with `{{"algorithm": "hello", "input": {{"duration_ms": 0}}}}`'
        f" for {results['profile']['create_s']:.0f} s after a 1 s warm-up. On taskbeat each "
        "202 means the row is committed, and the task then runs in the same process; the "
        "peers' workers run their jobs beside them.",
        "",
        "| system | req/s | p50 ms | p99 ms | ratio to ceiling | req/s of each run |",
        "|---|---|---|---|---|---|",
    ]
    for name, items in runs.items():
        ratio = _ratio(runs, name, ceiling, "rps")
        each = ", ".join(f"{r['rps']:,.0f}" for r in items)
        non_2xx = sum(v for k, v in _statuses(items).items() if not 200 <= int(k) < 300)
        note = f" ({non_2xx} non-2xx)" if non_2xx else ""
        out.append(
            f"| {name} | {_fmt(median([r['rps'] for r in items]))} "
            f"| {_fmt(median([r['p50_ms'] for r in items]), 1)} "
            f"| {_fmt(median([r['p99_ms'] for r in items]), 1)} "
            f"| {ratio:.2f}x | {each}{note} |"
        )
    out += [*[f"- {note}" for note in results["create"].get("notes", [])], ""]
    return out


def _statuses(items: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for item in items:
        for status, count in item["statuses"].items():
            total[status] = total.get(status, 0) + count
    return total


def _e2e_section(results: dict[str, Any]) -> list[str]:
    runs = results["end_to_end"]["runs"]
    count = results["profile"]["e2e_tasks"]
    out = [
        "## 3. End to end",
        "",
        f"{count:,} no-op tasks created by {results['profile']['connections']} concurrent "
        "clients, then each polled with `GET` until `succeeded`; timed from the first create "
        f"to the last completion seen (capped at {results['profile']['tasks_timeout_s']:.0f} s: "
        "a system that had not finished by then is rated on what it finished).",
        "",
        "| system | tasks/s | seconds | taskbeat ratio | tasks/s of each run | all succeeded |",
        "|---|---|---|---|---|---|",
    ]
    for name, items in runs.items():
        ratio = _ratio(runs, TASKBEAT, name, "tasks_per_s")
        each = ", ".join(f"{r['tasks_per_s']:,.0f}" for r in items)
        ok = all(r["complete"] and r["succeeded"] == r["count"] for r in items)
        done = ", ".join(f"{r['succeeded']:,}" for r in items)
        out.append(
            f"| {name} | {_fmt(median([r['tasks_per_s'] for r in items]))} "
            f"| {_fmt(median([r['elapsed_s'] for r in items]), 2)} | {ratio:.2f}x "
            f"| {each} | {'yes' if ok else f'NO ({done} by the cap)'} |"
        )
    return [*out, ""]


def _sleep_section(results: dict[str, Any]) -> list[str]:
    runs = results["sleep"]["runs"]
    count = results["profile"]["sleep_tasks"]
    return [
        "## 4. Sleep",
        "",
        f"{count:,} tasks of 500 ms created together; the ideal is the create phase plus 500 ms.",
        "",
        "| all done s | create phase s | ideal s | over the ideal s | all succeeded |",
        "|---|---|---|---|---|",
        f"| {median([r['elapsed_s'] for r in runs]):.2f} "
        f"| {median([r['create_phase_s'] for r in runs]):.2f} "
        f"| {median([r['ideal_s'] for r in runs]):.2f} "
        f"| {median([r['elapsed_s'] - r['ideal_s'] for r in runs]):.2f} "
        f"| {'yes' if all(r['succeeded'] == r['count'] for r in runs) else 'NO'} |",
        "",
    ]


def _scale_section(results: dict[str, Any]) -> list[str]:
    runs = _scale_runs(results, 10)
    flat = _scale_runs(results, 1)
    profile = results["profile"]

    def per_tick(key: str, rows: list[dict[str, Any]]) -> str:
        values: dict[str, list[float]] = {}
        for run in rows:
            for name, value in run.get(key, {}).items():
                values.setdefault(name, []).append(value)
        return ", ".join(f"{k} {median(v):,.1f}" for k, v in values.items())

    senders: dict[str, list[float]] = {}
    for run in runs:
        by_frame: dict[str, float] = {}  # the innermost frame names a sender well enough
        for sender, counts in run.get("trips_by_sender_per_tick", {}).items():
            frame = sender.split(" > ")[-1]
            by_frame[frame] = by_frame.get(frame, 0.0) + counts["trips"]
        for frame, trips in by_frame.items():
            senders.setdefault(frame, []).append(trips)

    def m(key: str, rows: list[dict[str, Any]] = runs) -> float:
        return median([r[key] for r in rows if key in r])

    return [
        "## 5. Scale",
        "",
        f"{profile['scale_tasks']:,} tasks of {profile['scale_duration_ms'] / 1000:.0f} s and "
        "10 steps in one replica (SQLite + its own redis-server); once all run, a window of "
        f"{profile['scale_window_s']:.0f} s is watched. Heartbeat ages are read from the "
        "`taskbeat:heartbeats` sorted set (whole-second scores, so up to 1 s of rounding); "
        "the event-loop lag is the service's own `event_loop_lag_ms` on `/v1/stats` (the "
        "last 10 s). Redis round trips and commands are counted at the service's client "
        "(`bench/counted_serve.py` wraps redis-py's connection: one `send_packed_command` "
        "is one round trip, a pipeline is one) and told apart by the code that sent them; "
        "the server's `INFO commandstats` over the window (Lua's inner calls included) is "
        "shown beside them. Each run is paired with one of 1-step tasks (no progress until "
        "the end): the difference in the service's CPU is the cost of live progress.",
        "",
        "| figure | median |",
        "|---|---|",
        f"| tasks created (cap {profile['scale_fill_timeout_s']:.0f} s) / running | "
        f"{m('created'):,.0f} / {m('running'):,.0f} |",
        f"| RSS | {m('rss_mb'):.0f} MB |",
        f"| threads | {m('threads'):.0f} |",
        f"| heartbeat age p99 / max | {m('heartbeat_age_p99_s'):.2f} s / "
        f"{m('heartbeat_age_max_s'):.2f} s |",
        f"| event-loop lag p50 / p99 / max, steady | "
        f"{median([r['lag']['p50'] for r in runs]):.1f} / "
        f"{median([r['lag']['p99'] for r in runs]):.1f} / "
        f"{median([r['lag']['max'] for r in runs]):.1f} ms |",
        f"| event-loop lag p99 / max, steady, 1-step tasks | "
        f"{median([r['lag']['p99'] for r in flat]):.1f} / "
        f"{median([r['lag']['max'] for r in flat]):.1f} ms |",
        f"| event-loop lag p99 / max, while the {profile['scale_tasks']:,} were created | "
        f"{median([r['lag_after_burst']['p99'] for r in runs]):.1f} / "
        f"{median([r['lag_after_burst']['max'] for r in runs]):.1f} ms |",
        f"| service CPU, 10 steps / 1 step (% of a core) | {m('cpu_percent'):.1f} / "
        f"{m('cpu_percent', flat):.1f} |",
        f"| heartbeat's round trips / commands per tick (client) | "
        f"{m('heartbeat_trips_per_tick'):.1f} / {m('heartbeat_commands_per_tick'):.1f} |",
        f"| all round trips per tick, by sender (client) | {m('trips_per_tick'):.1f} "
        f"({', '.join(f'`{k}` {median(v):.1f}' for k, v in senders.items())}) |",
        f"| commands per tick (client) | {m('client_commands_per_tick'):,.1f} "
        f"({per_tick('client_commands_breakdown_per_tick', runs)}) |",
        f"| commands per tick (server, Lua's inner calls included) | "
        f"{m('commands_per_tick'):,.1f} ({per_tick('command_breakdown_per_tick', runs)}) |",
        f"| creates/s while filling | {m('create_rps'):,.0f} |",
        "",
    ]


def _notice_section(results: dict[str, Any]) -> list[str]:
    runs = results["notice"]["runs"]
    count = results["profile"]["notice_tasks"]

    def m(key: str) -> float:
        return median([r[key] for r in runs if key in r])

    return [
        "## 6. Notice",
        "",
        f"{count} tasks of 1 s, `TASKBEAT_POLL_INTERVAL_S` left at 3 s. The notice latency "
        "is measured by the service itself (`notice_latency_ms` on `/v1/stats`): from the "
        "job's end as the C library stamps it (`finished_at_us` of the drained change) to "
        "the moment the run's final write has committed. Beside it, "
        "`finished_at - started_at - 1 s` from the rows, an upper bound that adds the start "
        "write and the submit.",
        "",
        "| notice p50 ms | p99 ms | max ms | runs measured | rows' upper bound p50 / p99 ms "
        "| all succeeded |",
        "|---|---|---|---|---|---|",
        f"| {m('p50_ms'):.1f} | {m('p99_ms'):.1f} | {m('max_ms'):.1f} | {m('samples'):.0f} "
        f"| {m('rows_p50_ms'):.1f} / {m('rows_p99_ms'):.1f} "
        f"| {'yes' if all(r['succeeded'] == r['tasks'] for r in runs) else 'NO'} |",
        "",
    ]


def _cancel_section(results: dict[str, Any]) -> list[str]:
    runs = results.get("cancel", {}).get("runs", [])
    if not runs:
        return []

    def m(key: str) -> float:
        return median([r[key] for r in runs])

    count = results["profile"]["cancel_tasks"]
    return [
        "## 7. Cancel",
        "",
        f"{count} tasks of 10 min created by 32 clients (timed), then, once all run, each "
        "cancelled by 32 clients with `POST /v1/tasks/{id}/cancel` (timed; each answer comes "
        "once the run has stopped and its `cancelled` is committed). The ratio is taken "
        "within each run.",
        "",
        "| create s | cancel s | cancel / create | cancel p50 ms | cancel p99 ms | all cancelled |",
        "|---|---|---|---|---|---|",
        f"| {m('create_s'):.2f} | {m('cancel_s'):.2f} | {m('ratio'):.2f}x "
        f"| {m('cancel_p50_ms'):.1f} | {m('cancel_p99_ms'):.1f} "
        f"| {'yes' if all(r['cancelled'] == r['count'] for r in runs) else 'NO'} |",
        "",
    ]
