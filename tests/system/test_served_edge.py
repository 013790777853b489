"""The edge of a real `taskbeat serve` process: the OpenAPI contract under a schema fuzzer
(schemathesis, with an admin key), slow clients against the header-read timeout, and the
server's headers."""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.domain.keys import new_secret

pytestmark = pytest.mark.slow
# status codes, schemas and content types as documented, and never a 5xx
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)


def test_the_running_service_keeps_its_openapi_contract(start_server: Any, tmp_path: Path) -> None:
    admin_key = new_secret()
    server = start_server(
        TASKBEAT_CALLBACK_SECRET="contract-secret",
        TASKBEAT_BOOTSTRAP_ADMIN_KEY=admin_key,
        TASKBEAT_KEY_RATE_PER_S="100000",
    )
    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert schemathesis, "schemathesis is a dev dependency: make dev"
    command = [
        schemathesis,
        "run",
        f"{server.url}/openapi.json",
        f"--checks={CHECKS}",
        "--max-examples=25",
        "--max-time=30",
        "--request-timeout=10",
        "--no-color",
        f"--header=Authorization: Bearer {admin_key}",
    ]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False
    )
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert "generated" in report, report
    assert " passed" in report, report
    log = server.log_path.read_text()
    assert "Traceback" not in log
    assert '"GET /v1/tasks HTTP/1.1" 200' in log, "the admin key was not sent"


def _slow_client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_slow_clients_cannot_hold_connections_past_the_header_timeout(start_server: Any) -> None:
    server = start_server(TASKBEAT_HEADER_TIMEOUT_S="1.0")
    slow = [_slow_client(server.port) for _ in range(50)]
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    started = time.monotonic()
    try:
        # the service still answers everyone else meanwhile
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        for sock in slow[:5]:  # trickling bytes does not extend the deadline
            sock.sendall(b"X-Trickle: 1\r\n")
        assert all(_closed_by_server(sock) for sock in [*slow, silent])
        elapsed = time.monotonic() - started
        assert elapsed < 6, f"held for {elapsed:.1f} s"
    finally:
        for sock in [*slow, silent]:
            sock.close()

    # a kept-alive connection gets the same deadline for its next request's headers
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b'{"status":"ok"}'):
            answer += sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200 OK")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        assert _closed_by_server(sock)
        assert time.monotonic() - started < 5


def test_served_answers_carry_no_server_banner_and_defensive_headers(start_server: Any) -> None:
    server = start_server()
    for path in ("/healthz", "/v1/tasks", "/nowhere"):
        response = httpx.get(f"{server.url}{path}", timeout=5)
        assert "server" not in response.headers
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
