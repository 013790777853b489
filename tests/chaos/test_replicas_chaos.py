"""Several replicas, and one of them dies: every task still finishes, exactly once.

These run real `taskbeat serve` processes on one PostgreSQL database and one Redis, and
break things on purpose: SIGKILL, SIGTERM, a Redis restart, a lost database network.
"""

import signal
import time
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio as aioredis
from helpers import eventually
from sqlalchemy.engine import make_url

from chaos.conftest import Replicas
from chaos.faults import RedisProcess, TcpProxy

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.chaos]

FAST = {"TASKBEAT_HEARTBEAT_INTERVAL_S": "0.5", "TASKBEAT_LEASE_S": "1.5"}


async def create_many(
    http: httpx.AsyncClient, urls: list[str], count: int, **input_fields: Any
) -> list[str]:
    """Creates `count` tasks, spread round-robin over the replicas."""
    ids: list[str] = []

    async def create_on(indexes: range) -> None:
        for index in indexes:
            response = await http.post(
                f"{urls[index % len(urls)]}/v1/tasks",
                json={"algorithm": "hello", "input": input_fields},
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["task_id"])

    async with anyio.create_task_group() as tg:
        step = max(1, count // 10)
        for start in range(0, count, step):
            tg.start_soon(create_on, range(start, min(count, start + step)))
    return ids


async def running_at_least(
    sql: Any, count: int, *, owner: str | None = None, timeout_s: float = 20
) -> None:
    """Waits until `count` tasks (of `owner`, if given) are running."""

    async def check() -> bool:
        running = await sql.fetchval(
            "SELECT count(*) FROM tasks WHERE status = 'running' "
            "AND ($1::text IS NULL OR owner = $1)",
            owner,
        )
        return bool(running >= count)

    await eventually(check, timeout_s=timeout_s, interval_s=0.1)


async def all_finished(sql: Any, count: int, timeout_s: float) -> None:
    async def check() -> bool:
        unfinished = await sql.fetchval(
            "SELECT count(*) FROM tasks WHERE status IN ('pending', 'running')"
        )
        total = await sql.fetchval("SELECT count(*) FROM tasks")
        return bool(total == count and unfinished == 0)

    await eventually(check, timeout_s=timeout_s, interval_s=0.25)


async def assert_each_finished_exactly_once(sql: Any, count: int) -> None:
    rows = await sql.fetch(
        "SELECT task_id, count(*) AS finishes FROM task_events "
        "WHERE to_status NOT IN ('pending', 'running') GROUP BY task_id"
    )
    assert len(rows) == count
    assert {row["finishes"] for row in rows} == {1}
    statuses = await sql.fetch("SELECT status, count(*) AS n FROM tasks GROUP BY status")
    assert {row["status"]: row["n"] for row in statuses} == {"succeeded": count}


async def assert_counts_back_to_zero(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:

        async def zero() -> bool:
            active = await client.get("taskbeat:active:hello")
            running = await client.zcard("taskbeat:heartbeats")
            return active == "0" and running == 0

        await eventually(zero, timeout_s=15, interval_s=0.25)
    finally:
        await client.aclose()


async def replica_id(http: httpx.AsyncClient, url: str) -> str:
    return str((await http.get(f"{url}/readyz")).json()["replica"])


async def test_sigkill_of_a_replica_loses_no_task(
    start_replicas: Replicas, http: httpx.AsyncClient, sql: Any, chaos_redis: RedisProcess
) -> None:
    # Default heartbeat (2 s) and lease (6 s): the guarantee is measured as users get it.
    replicas = start_replicas(3)
    urls = [server.url for server in replicas]
    victim = replicas[1]
    victim_id = await replica_id(http, victim.url)
    # Long enough that the victim holds many runs at once even on a slow, busy box.
    ids = await create_many(http, urls, 300, duration_ms=8000)
    await running_at_least(sql, 30, owner=victim_id)
    redis = aioredis.Redis.from_url(chaos_redis.url, decode_responses=True)
    victim.stop(signal.SIGKILL)
    last_beat = float(await redis.zscore("taskbeat:replicas", victim_id) or 0)
    await redis.aclose()
    assert last_beat > 0

    await all_finished(sql, len(ids), timeout_s=90)
    await assert_each_finished_exactly_once(sql, len(ids))

    taken_over = await sql.fetch(
        "SELECT task_id, min(at) AS at FROM task_events "
        "WHERE to_status = 'pending' AND from_status IS NOT NULL AND replica <> $1 "
        "GROUP BY task_id",
        victim_id,
    )
    assert len(taken_over) >= 30
    delays = sorted(row["at"].timestamp() - last_beat for row in taken_over)
    assert delays[-1] <= 10.0, f"slowest takeover {delays[-1]:.1f} s after the last beat"
    print(
        f"takeover after the victim's last beat: first {delays[0]:.1f} s, last {delays[-1]:.1f} s"
    )
    reruns = await sql.fetchval("SELECT count(*) FROM tasks WHERE attempt = 2")
    assert reruns >= 50
    await assert_counts_back_to_zero(chaos_redis.url)


async def test_sigterm_drains_and_hands_tasks_over(
    start_replicas: Replicas, http: httpx.AsyncClient, sql: Any, chaos_redis: RedisProcess
) -> None:
    replicas = start_replicas(3, TASKBEAT_SHUTDOWN_GRACE_S="1", **FAST)
    urls = [server.url for server in replicas]
    leaving = replicas[2]
    leaving_id = await replica_id(http, leaving.url)
    ids = await create_many(http, urls, 150, duration_ms=3000)
    await running_at_least(sql, 20, owner=leaving_id)
    stopped_at = time.time()
    assert leaving.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    log = leaving.log_path.read_text()
    assert "released" in log
    assert "Traceback" not in log

    await all_finished(sql, len(ids), timeout_s=60)
    await assert_each_finished_exactly_once(sql, len(ids))
    handed_back = await sql.fetch(
        "SELECT task_id, at FROM task_events WHERE from_status = 'running' "
        "AND to_status = 'pending' AND replica = $1",
        leaving_id,
    )
    assert handed_back, "the draining replica handed no running task back"
    # Handed back to the queue, each is claimed (pending -> running) by another replica.
    adopted = await sql.fetch(
        "SELECT min(at) AS at FROM task_events WHERE from_status = 'pending' "
        "AND to_status = 'running' AND replica <> $1 AND task_id = ANY($2::text[]) "
        "AND at >= $3 GROUP BY task_id",
        leaving_id,
        [row["task_id"] for row in handed_back],
        min(row["at"] for row in handed_back),
    )
    assert len(adopted) == len(handed_back)
    slowest = max(row["at"].timestamp() for row in adopted) - stopped_at
    assert slowest < 5.0, f"handed-back tasks waited {slowest:.1f} s"
    failed = await sql.fetchval("SELECT count(*) FROM tasks WHERE status = 'failed'")
    assert failed == 0
    await assert_counts_back_to_zero(chaos_redis.url)


async def test_cancel_on_one_replica_stops_the_run_on_another(
    start_replicas: Replicas, http: httpx.AsyncClient
) -> None:
    replica_a, replica_b = start_replicas(2, TASKBEAT_HEARTBEAT_INTERVAL_S="10")
    created = await http.post(
        f"{replica_b.url}/v1/tasks", json={"algorithm": "hello", "input": {"hang": True}}
    )
    task_url = created.headers["location"]

    async def running() -> bool:
        return bool((await http.get(replica_b.url + task_url)).json()["status"] == "running")

    await eventually(running)
    started = time.monotonic()
    cancelled = await http.post(f"{replica_a.url}{task_url}/cancel")
    elapsed_s = time.monotonic() - started
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    assert elapsed_s < 1.0, f"cancel across replicas took {elapsed_s:.2f} s"


async def test_a_redis_restart_fails_no_task(
    start_replicas: Replicas, http: httpx.AsyncClient, sql: Any, chaos_redis: RedisProcess
) -> None:
    replicas = start_replicas(2, **FAST)
    urls = [server.url for server in replicas]
    ids = await create_many(http, urls, 40, duration_ms=5000)
    await running_at_least(sql, 40)
    chaos_redis.kill()
    await anyio.sleep(1.0)
    chaos_redis.start()  # empty: it keeps nothing on disk

    redis = aioredis.Redis.from_url(chaos_redis.url, decode_responses=True)
    try:

        async def restored() -> bool:
            beats = await redis.zcard("taskbeat:heartbeats")
            active = await redis.get("taskbeat:active:hello")
            return beats == 40 and active == "40"

        await eventually(restored, timeout_s=3)
    finally:
        await redis.aclose()
    await all_finished(sql, len(ids), timeout_s=30)
    await assert_each_finished_exactly_once(sql, len(ids))
    await assert_counts_back_to_zero(chaos_redis.url)


async def test_a_lost_database_answers_503_and_loses_no_outcome(
    start_replicas: Replicas,
    http: httpx.AsyncClient,
    sql: Any,
    chaos_database: str,
    chaos_redis: RedisProcess,
) -> None:
    target = make_url(chaos_database)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    proxy.start()
    try:
        through_proxy = target.set(host="127.0.0.1", port=proxy.port)
        (replica,) = start_replicas(
            1, TASKBEAT_DATABASE_URL=through_proxy.render_as_string(hide_password=False)
        )
        ids = await create_many(http, [replica.url], 20, duration_ms=1500)
        await running_at_least(sql, 20)
        proxy.cut()
        refused = await http.post(f"{replica.url}/v1/tasks", json={"algorithm": "hello"})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "store_unavailable"
        ready = await http.get(f"{replica.url}/readyz")
        assert ready.status_code == 503
        await anyio.sleep(2.5)  # the runs finish while the database is away
        assert await sql.fetchval("SELECT count(*) FROM tasks WHERE status = 'succeeded'") == 0
        proxy.restore()

        await all_finished(sql, len(ids), timeout_s=30)
        await assert_each_finished_exactly_once(sql, len(ids))
        assert "Traceback" not in replica.log_path.read_text()
    finally:
        proxy.close()
    await assert_counts_back_to_zero(chaos_redis.url)


async def test_a_frozen_replica_comes_back_and_no_cancel_is_lost(
    start_replicas: Replicas, http: httpx.AsyncClient, sql: Any, chaos_redis: RedisProcess
) -> None:
    replicas = start_replicas(3, **FAST)
    urls = [server.url for server in replicas]
    victim = replicas[0]
    victim_id = await replica_id(http, victim.url)
    # Its jobs end while it is frozen, so it wakes up to finished runs and stale cancels.
    ids = await create_many(http, urls, 90, duration_ms=4000)
    await running_at_least(sql, 10, owner=victim_id)
    held = await sql.fetch(
        "SELECT task_id FROM tasks WHERE owner = $1 AND status = 'running'", victim_id
    )
    to_cancel = [row["task_id"] for row in held[: len(held) // 2 + 1]]

    frozen_at = time.time()
    victim.process.send_signal(signal.SIGSTOP)  # frozen well past its 1.5 s lease
    # Cancels before, across and after the takeover, each before the re-run could end.
    step_s = 3.5 / len(to_cancel)
    try:
        for index, task_id in enumerate(to_cancel):
            await anyio.sleep(step_s)
            response = await http.post(f"{urls[1 + index % 2]}/v1/tasks/{task_id}/cancel")
            assert response.status_code == 202, response.text
        await anyio.sleep(6.0 - 3.5)
    finally:
        victim.process.send_signal(signal.SIGCONT)
    resumed_at = time.monotonic()

    # It recovers (never unready for more than a few seconds) or exits for its supervisor.
    unready_since: float | None = None
    while time.monotonic() - resumed_at < 8.0 and victim.process.poll() is None:
        try:
            ready = (await http.get(f"{victim.url}/readyz", timeout=2)).status_code == 200
        except httpx.TransportError:
            ready = False
        now = time.monotonic()
        unready_since = None if ready else (unready_since or now)
        assert unready_since is None or now - unready_since < 3.0, "up, and unready for 3 s"
        await anyio.sleep(0.1)
    assert victim.process.poll() is not None or unready_since is None

    await all_finished(sql, len(ids), timeout_s=60)
    finishes = await sql.fetch(
        "SELECT task_id, count(*) AS n FROM task_events "
        "WHERE to_status NOT IN ('pending', 'running') GROUP BY task_id"
    )
    assert len(finishes) == len(ids)
    assert {row["n"] for row in finishes} == {1}
    statuses = dict(await sql.fetch("SELECT task_id, status FROM tasks"))
    assert {task_id for task_id, status in statuses.items() if status == "cancelled"} == set(
        to_cancel
    )
    assert {statuses[task_id] for task_id in ids if task_id not in to_cancel} == {"succeeded"}
    late = await sql.fetchval(
        "SELECT count(*) FROM task_events WHERE replica = $1 AND at > to_timestamp($2) "
        "AND to_status NOT IN ('pending', 'running')",
        victim_id,
        frozen_at,
    )
    assert late == 0, "the frozen replica's late results were taken"
    if victim.process.poll() is None:  # it recovered: still ready, and it runs tasks again
        assert (await http.get(f"{victim.url}/readyz")).status_code == 200
        (again,) = await create_many(http, [victim.url], 1, duration_ms=100)
        await all_finished(sql, len(ids) + 1, timeout_s=15)
        assert statuses.get(again) is None
    await assert_counts_back_to_zero(chaos_redis.url)
