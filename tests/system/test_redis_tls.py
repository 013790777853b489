"""TASKBEAT_REDIS_URL=rediss://…: a real redis-server that speaks only TLS on loopback, with a
certificate from a CA made by the test (openssl), the CA given in the URL's query."""

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

pytestmark = pytest.mark.slow


def _openssl(workdir: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=workdir, capture_output=True, timeout=30, check=True)


def _make_certificates(workdir: Path) -> None:
    """ca.pem (a throwaway CA) and server.pem + server.key for 127.0.0.1, signed by it."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(workdir, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "1", "-subj", "/CN=taskbeat test CA")  # fmt: skip
    _openssl(workdir, "req", *ec, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1")  # fmt: skip
    (workdir / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(workdir, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
             "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "1",
             "-extfile", "san.ext")  # fmt: skip


class TlsRedis:
    """redis-server with TLS only (`--port 0`): no plain-text port at all."""

    def __init__(self, workdir: Path) -> None:
        server = shutil.which("redis-server")
        if server is None or shutil.which("openssl") is None:
            pytest.skip("redis-server or openssl not on PATH (apt-get install redis-server)")
        _make_certificates(workdir)
        self.port = free_port()
        self.ca_file = workdir / "ca.pem"
        self.url = f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca_file}"
        self.log_path = workdir / "redis-tls.log"
        command = [
            server, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
            "--tls-cert-file", "server.pem", "--tls-key-file", "server.key",
            "--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no",
            "--save", "", "--appendonly", "no",
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
            )

    def client(self) -> "redis.Redis":
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=2)

    def wait_ready(self, timeout_s: float = 15) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log_path.read_text()
                if "Bad directive" in log and "tls" in log:  # built without TLS
                    pytest.skip(f"this redis-server has no TLS: {log[-300:]}")
                raise AssertionError(f"redis-server exited: {log[-2000:]}")
            try:
                with self.client() as probe:
                    if probe.ping():
                        return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise AssertionError(f"redis-server with TLS did not start: {self.log_path.read_text()}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    server = TlsRedis(tmp_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_the_tls_redis_refuses_a_client_that_does_not_trust_its_ca(tls_redis: TlsRedis) -> None:
    # Without the test's CA the certificate does not verify: the URL's CA is what is used.
    untrusted = redis.Redis.from_url(f"rediss://127.0.0.1:{tls_redis.port}/0", socket_timeout=2)
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        untrusted.ping()
    untrusted.close()


def test_the_service_runs_on_a_tls_redis_and_monitors_read_itsrun_heartbeats(
    tls_redis: TlsRedis, start_server: Any, serve_env: dict[str, str]
) -> None:
    beats = {"TASKBEAT_HEARTBEAT_INTERVAL_S": "0.5"}
    server = start_server(TASKBEAT_REDIS_URL=tls_redis.url, **beats)
    assert httpx.get(f"{server.url}/readyz").json()["redis"] == "ok"

    quick = httpx.post(f"{server.url}/v1/tasks", json={"algorithm": "hello", "input": {}}).json()
    running = httpx.post(
        f"{server.url}/v1/tasks", json={"algorithm": "hello", "input": {"duration_ms": 20000}}
    ).json()
    done = httpx.get(f"{server.url}/v1/tasks/{quick['task_id']}/wait?timeout_s=20", timeout=30)
    assert done.json()["status"] == "succeeded", done.text
    assert done.json()["result"] == {"output": "hello world"}

    env = {**serve_env, **beats}
    deadline = time.monotonic() + 15
    while True:
        read = run_heartbeats(env, tls_redis.url)
        if read.returncode == 0 and running["task_id"] in read.stdout:
            break
        assert time.monotonic() < deadline, (read.returncode, read.stdout, read.stderr)
        time.sleep(0.3)
    assert "OK: 1 task running" in read.stdout, read.stdout

    # The beats were written over TLS into this Redis, under the service's prefix.
    with tls_redis.client() as direct:
        prefix = serve_env["TASKBEAT_REDIS_PREFIX"]
        assert direct.zscore(f"{prefix}heartbeats", running["task_id"]) is not None
