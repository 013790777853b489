"""TASKBEAT_REDIS_URL=redis+sentinel://…: a real Sentinel set on loopback (one master, one
replica, three sentinels, from redis-server), failed over while tasks run."""

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from serve_process import free_port, run_heartbeats

from app.core.redis import SentinelTarget

pytestmark = pytest.mark.slow

SERVICE = "mymaster"
TASKS = 8


def test_sentinel_urls_are_parsed() -> None:
    target = SentinelTarget.parse("redis+sentinel://:s%40cret@h1:26379,h2:26380,h3/mymaster/2")
    assert target.sentinels == [("h1", 26379), ("h2", 26380), ("h3", 26379)]
    assert (target.service, target.db, target.password) == ("mymaster", 2, "s@cret")
    assert SentinelTarget.parse("redis+sentinel://h1:1/svc").db == 0
    with pytest.raises(ValueError, match="service"):
        SentinelTarget.parse("redis+sentinel://h1:1")


class SentinelSet:
    """redis-server processes on loopback ports, in `workdir`; `stop()` ends each by pid."""

    def __init__(self, workdir: Path) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.skip("redis-server not on PATH (apt-get install redis-server)")
        self.processes: list[subprocess.Popen[bytes]] = []
        self.master_port, self.replica_port = free_port(), free_port()
        common = ["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]
        self._start(workdir, server, "--port", str(self.master_port), *common)
        self._start(
            workdir, server, "--port", str(self.replica_port), *common,
            "--replicaof", "127.0.0.1", str(self.master_port),
        )  # fmt: skip
        self.sentinel_ports = [free_port() for _ in range(3)]
        for port in self.sentinel_ports:
            config = workdir / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
            )
            self._start(workdir, server, str(config), "--sentinel")
        self.url = (
            "redis+sentinel://"
            + ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
            + f"/{SERVICE}/0"
        )

    def _start(self, workdir: Path, *command: str) -> None:
        log = (workdir / "redis.log").open("ab")
        self.processes.append(
            subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        )

    def sentinel(self) -> "redis.Redis":
        return redis.Redis(port=self.sentinel_ports[0], decode_responses=True, socket_timeout=2)

    def master_port_now(self) -> int:
        return int(self.sentinel().sentinel_get_master_addr_by_name(SERVICE)[1])

    def wait_healthy(self, timeout_s: float = 30) -> None:
        """Until every sentinel knows the replica and the other sentinels."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                master = self.sentinel().sentinel_master(SERVICE)
                if master["num-slaves"] >= 1 and master["num-other-sentinels"] >= 2:
                    return
            except redis.RedisError:
                pass
            time.sleep(0.2)
        raise AssertionError("the sentinel set did not come up")

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    sentinel_set = SentinelSet(tmp_path)
    try:
        sentinel_set.wait_healthy()
        yield sentinel_set
    finally:
        sentinel_set.stop()


def _until(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_failover_while_tasks_run_loses_nothing(
    sentinels: SentinelSet, start_server: Any, serve_env: dict[str, str]
) -> None:
    beats = {"TASKBEAT_HEARTBEAT_INTERVAL_S": "0.5", "TASKBEAT_LEASE_S": "30"}
    server = start_server(TASKBEAT_REDIS_URL=sentinels.url, **beats)
    env = {**serve_env, **beats}
    prefix = serve_env["TASKBEAT_REDIS_PREFIX"]
    task_ids = [
        httpx.post(
            f"{server.url}/v1/tasks", json={"algorithm": "hello", "input": {"duration_ms": 20000}}
        ).json()["task_id"]
        for _ in range(TASKS)
    ]
    _until(
        lambda: (
            (r := run_heartbeats(env, sentinels.url)).returncode == 0
            and all(t in r.stdout for t in task_ids)
        ),
        20,
        "every task to beat through the sentinels",
    )

    old_master = sentinels.master_port_now()
    assert sentinels.sentinel().execute_command("SENTINEL", "FAILOVER", SERVICE)
    _until(lambda: sentinels.master_port_now() != old_master, 20, "the failover")
    assert sentinels.master_port_now() == sentinels.replica_port

    # Heartbeats come back on the new master within a few beats, every task still in them.
    recovered = _until(
        lambda: (
            (r := run_heartbeats(env, sentinels.url)).returncode == 0
            and all(t in r.stdout for t in task_ids)
            and r
        ),
        15,
        "heartbeats on the new master",
    )
    assert f"OK: {TASKS} tasks running" in recovered.stdout

    for task_id in task_ids:
        done = httpx.get(f"{server.url}/v1/tasks/{task_id}/wait?timeout_s=30", timeout=40).json()
        assert done["status"] == "succeeded", done
        assert done["attempt"] == 1, done  # not re-run: the replica kept its lease

    new_master = redis.Redis(port=sentinels.replica_port, decode_responses=True)
    try:
        _until(
            lambda: (
                new_master.zcard(f"{prefix}heartbeats") == 0
                and int(new_master.get(f"{prefix}active:hello") or 0) == 0
            ),
            10,
            "the counts back at zero",
        )
    finally:
        print({k: new_master.type(k) for k in new_master.keys(f"{prefix}*")})
        print(
            new_master.get(f"{prefix}active:hello"),
            new_master.hgetall(f"{prefix}active-by-replica:hello"),
            new_master.zrange(f"{prefix}heartbeats", 0, -1),
        )
        new_master.close()
