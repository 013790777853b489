"""The load generator: aiohttp on uvloop, in its own process; prints one JSON object.

    python -m bench.load rate  --url URL --body JSON [--connections 64] [--duration-s 10]
    python -m bench.load tasks --url URL --body JSON --count 5000 [--connections 64]
    python -m bench.load cancel --url URL --body JSON --count 2000 [--connections 32]

`rate` POSTs the body on every connection for the duration (after a warm-up) and reports
req/s and latency percentiles. `tasks` creates `count` tasks, then polls each one with
GET {url}/{task_id} until its status is finished, and reports tasks/s from the first
create to the last completion seen (the same way for taskbeat and for the peers).
`cancel` creates `count` long tasks, waits until all run (taskbeat's /v1/stats), then
cancels every one, each phase timed with the same number of clients.
"""

import argparse
import asyncio
import collections
import contextlib
import json
import math
import sys
import time
from typing import Any

import aiohttp

DONE = {"succeeded"}
FAILED = {"failed", "cancelled", "timed_out"}
RECHECK_AFTER_S = 0.01
FINAL_SWEEP_S = 20.0


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def _session(connections: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


async def rate(url: str, body: bytes, connections: int, duration_s: float, warmup_s: float) -> Any:
    latencies_ms: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    errors = 0
    headers = {"content-type": "application/json"}
    start = time.perf_counter()
    measure_from = start + warmup_s
    until = measure_from + duration_s

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while True:
            sent = time.perf_counter()
            if sent >= until:
                return
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
                await asyncio.sleep(0.01)
                continue
            done = time.perf_counter()
            if sent >= measure_from:
                statuses[status] += 1
                if 200 <= status < 300:
                    latencies_ms.append((done - sent) * 1000)

    async with _session(connections) as session:
        await asyncio.gather(*(client(session) for _ in range(connections)))
    elapsed_s = time.perf_counter() - measure_from
    return {
        "requests": len(latencies_ms),
        "rps": len(latencies_ms) / elapsed_s,
        "p50_ms": percentile(latencies_ms, 0.50),
        "p99_ms": percentile(latencies_ms, 0.99),
        "statuses": dict(statuses),
        "errors": errors,
    }


async def tasks(
    url: str, body: bytes, count: int, connections: int, timeout_s: float, wait: bool
) -> Any:
    headers = {"content-type": "application/json"}
    to_create = count
    to_check: collections.deque[tuple[float, str]] = collections.deque()
    finals: dict[str, dict[str, Any]] = {}
    errors = 0
    gets = 0
    start = time.perf_counter()
    created_at_s = start
    deadline = start + timeout_s

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal to_create, errors, gets, created_at_s
        check_turn = False
        while time.perf_counter() < deadline:
            # Creates and checks alternate, so completions are seen while creates go on.
            check_turn = not check_turn and wait and bool(to_check)
            if to_create > 0 and not check_turn:
                to_create -= 1
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        payload = await response.json(content_type=None)
                        ok = response.status == 202
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    ok, payload = False, None
                if not ok:
                    errors += 1
                    to_create += 1
                    await asyncio.sleep(0.05)
                    continue
                to_check.append((time.perf_counter(), payload["task_id"]))
                if to_create == 0:
                    created_at_s = time.perf_counter()
                continue
            if not wait or not to_check:
                if to_create == 0 and (not wait or all_seen()):
                    return
                await asyncio.sleep(0.005)
                continue
            checked_s, task_id = to_check.popleft()
            pause_s = checked_s + RECHECK_AFTER_S - time.perf_counter()
            if pause_s > 0:
                await asyncio.sleep(pause_s)
            try:
                async with session.get(f"{url}/{task_id}") as response:
                    task = await response.json(content_type=None)
                gets += 1
            except (aiohttp.ClientError, TimeoutError, ValueError):
                errors += 1
                to_check.append((time.perf_counter(), task_id))
                continue
            if task.get("status") in DONE | FAILED:
                finals[task_id] = task
            else:
                to_check.append((time.perf_counter(), task_id))

    def all_seen() -> bool:
        return len(finals) >= count

    async def final_sweep(session: aiohttp.ClientSession) -> None:
        """At the cap: one last GET of every task still open, so a system that was still
        creating is rated on what it had finished, not on what it had checked."""
        while to_check and time.perf_counter() < deadline + FINAL_SWEEP_S:
            _, task_id = to_check.popleft()
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                async with session.get(f"{url}/{task_id}") as response:
                    task = await response.json(content_type=None)
                if task.get("status") in DONE | FAILED:
                    finals[task_id] = task

    async with _session(connections) as session:
        await asyncio.gather(*(client(session) for _ in range(connections)))
        elapsed_s = time.perf_counter() - start
        if wait and len(finals) < count:
            await asyncio.gather(*(final_sweep(session) for _ in range(connections)))
    succeeded = sum(1 for task in finals.values() if task.get("status") in DONE)
    complete = (len(finals) == count) if wait else (to_create == 0)
    return {
        "count": count,
        "created": count - to_create,
        "complete": complete,
        "succeeded": succeeded,
        "failed": len(finals) - succeeded,
        "elapsed_s": elapsed_s,
        "create_phase_s": created_at_s - start,
        "tasks_per_s": (succeeded if wait else count - to_create) / elapsed_s,
        "gets": gets,
        "errors": errors,
        "finals": list(finals.values()),
    }


async def _phase(
    session: aiohttp.ClientSession, connections: int, requests: list[Any]
) -> tuple[float, list[float], collections.Counter[int], list[Any]]:
    """Sends every (url, body) request with `connections` clients: elapsed seconds, the
    latencies, the statuses, and the answers (JSON) in the order they came."""
    pending = collections.deque(requests)
    latencies_ms: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    answers: list[Any] = []
    headers = {"content-type": "application/json"}

    async def client() -> None:
        while pending:
            url, body = pending.popleft()
            sent = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                answers.append(await response.json(content_type=None))
                statuses[response.status] += 1
            latencies_ms.append((time.perf_counter() - sent) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return time.perf_counter() - start, latencies_ms, statuses, answers


async def cancels(url: str, body: bytes, count: int, connections: int, timeout_s: float) -> Any:
    stats_url = url.removesuffix("/tasks") + "/stats"
    async with _session(connections) as session:
        create_s, create_ms, create_statuses, created = await _phase(
            session, connections, [(url, body)] * count
        )
        ids = [task["task_id"] for task in created if "task_id" in task]
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            async with session.get(stats_url) as response:
                replica = (await response.json())["replica"]
            if replica["waiting"] == 0 and replica["running"] >= len(ids):
                break
            await asyncio.sleep(0.1)
        cancel_s, cancel_ms, cancel_statuses, answers = await _phase(
            session, connections, [(f"{url}/{task_id}/cancel", b"") for task_id in ids]
        )
    return {
        "count": count,
        "create_s": create_s,
        "create_p99_ms": percentile(create_ms, 0.99),
        "create_statuses": dict(create_statuses),
        "cancel_s": cancel_s,
        "cancel_p50_ms": percentile(cancel_ms, 0.50),
        "cancel_p99_ms": percentile(cancel_ms, 0.99),
        "cancel_statuses": dict(cancel_statuses),
        "cancelled": sum(1 for task in answers if task.get("status") == "cancelled"),
        "ratio": cancel_s / create_s,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.load")
    parser.add_argument("mode", choices=["rate", "tasks", "cancel"])
    parser.add_argument("--url", required=True, help="the create endpoint")
    parser.add_argument("--body", default='{"algorithm": "hello", "input": {"duration_ms": 0}}')
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--no-wait", action="store_true", help="tasks: only create them")
    args = parser.parse_args(argv)
    try:
        from uvloop import run as run_loop
    except ImportError:
        run_loop = asyncio.run
    body = args.body.encode()
    if args.mode == "rate":
        result = run_loop(rate(args.url, body, args.connections, args.duration_s, args.warmup_s))
    elif args.mode == "cancel":
        result = run_loop(cancels(args.url, body, args.count, args.connections, args.timeout_s))
    else:
        wait = not args.no_wait
        result = run_loop(tasks(args.url, body, args.count, args.connections, args.timeout_s, wait))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
