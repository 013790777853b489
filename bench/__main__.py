"""python -m bench [--quick] [--out PATH] [--only WORKLOAD ... --reuse RESULTS.json]"""

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from bench import report, systems, workloads
from bench.procs import LOGS, VAR

WORKLOADS = ("create", "end_to_end", "sleep", "scale", "notice", "cancel")
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, one run each")
    parser.add_argument("--out", type=Path, help="the Markdown report to write")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN_URL, help="admin URL ('' skips)")
    parser.add_argument("--command", help="the command to print in the report")
    parser.add_argument("--only", action="append", choices=WORKLOADS, help="run just these")
    parser.add_argument("--reuse", type=Path, help="take the other workloads from this JSON")
    args = parser.parse_args(argv)
    profile = workloads.QUICK if args.quick else workloads.FULL
    if args.out is not None:
        out = args.out
    elif args.only and args.reuse is None:  # some workloads only: never over the full report
        out = VAR / ("benchmarks-only-quick.md" if args.quick else "benchmarks-only.md")
    else:
        out = VAR / "benchmarks-quick.md" if args.quick else Path("docs/benchmarks.md")
    command = args.command or "python -m bench " + shlex.join(argv or sys.argv[1:])

    systems.clean_var()
    LOGS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {"profile": dataclasses.asdict(profile)}
    if args.reuse is not None:
        reused = json.loads(args.reuse.read_text())
        results.update({name: reused[name] for name in WORKLOADS if name in reused})
    if not systems.peers_available():
        print("bench: the peers' venv is missing (make bench installs it); peers skipped")
    steps = {
        "create": lambda: workloads.create(profile, args.postgres or None),
        "end_to_end": lambda: workloads.end_to_end(profile),
        "sleep": lambda: workloads.sleep(profile),
        "scale": lambda: workloads.scale(profile),
        "notice": lambda: workloads.notice(profile),
        "cancel": lambda: workloads.cancel(profile),
    }
    for name in args.only or WORKLOADS:
        step_started = time.monotonic()
        print(f"bench: {name} ...", flush=True)
        results[name] = steps[name]()
        print(f"bench: {name} done in {time.monotonic() - step_started:.0f} s", flush=True)
        (VAR / "results-partial.json").write_text(json.dumps(results, default=str))
    results["machine"] = report.machine()
    report.write(results, out, command=command, elapsed_s=time.monotonic() - started)
    print(f"bench: wrote {out} in {(time.monotonic() - started) / 60:.1f} min")
    for line in _headlines(report.summarise(results)):
        print(f"bench: {line}")
    return 0


def _headlines(summary: dict[str, float]) -> list[str]:
    return [f"{key} = {value:.2f}" for key, value in summary.items()]


if __name__ == "__main__":
    sys.exit(main())
