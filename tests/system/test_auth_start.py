"""Auth at start-up and as keys appear: `auto` refuses a non-loopback address with no key,
turns on on every running replica within a second of the first key, and the first key
may come from TASKBEAT_BOOTSTRAP_ADMIN_KEY or `taskbeat keys create` (no service needed)."""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from conftest import AppClient
from keyring import bearer
from serve_process import Server

from app.domain.keys import new_secret

CLI = [sys.executable, "-m", "app.cli"]


def test_auto_refuses_to_serve_on_every_address_without_a_key(
    serve_env: dict[str, str], tmp_path: Path
) -> None:
    # refused before the socket is bound: nothing listens on 0.0.0.0 meanwhile
    server = Server({**serve_env, "TASKBEAT_HOST": "0.0.0.0"}, tmp_path / "refused.log")
    try:
        code = server.process.wait(timeout=60)
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert code != 0
    assert "refusing to serve on 0.0.0.0 without an API key" in log
    assert "taskbeat keys create" in log
    assert "TASKBEAT_AUTH=off" in log
    assert "Uvicorn running" not in log


@pytest.mark.anyio
async def test_auto_turns_on_everywhere_within_a_second_of_the_first_key(
    app_client: AppClient,
) -> None:
    async with app_client() as one, app_client() as two:
        assert (await two.get("/v1/tasks")).status_code == 200  # no key yet: off on loopback
        made = await one.post("/v1/keys", json={"name": "first", "role": "admin"})
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]
        assert secret.startswith("tb_")
        assert len(secret) >= 46
        started = time.monotonic()
        while (await two.get("/v1/tasks")).status_code != 401:
            assert time.monotonic() - started < 1.5, "auth not on within a second"
            await anyio.sleep(0.05)
        assert (await two.get("/v1/tasks", headers=bearer(secret))).status_code == 200
        revoke = await two.delete(f"/v1/keys/{made.json()['key_id']}", headers=bearer(secret))
        assert revoke.status_code == 204
        started = time.monotonic()
        while (await one.get("/v1/tasks", headers=bearer(secret))).status_code != 401:
            assert time.monotonic() - started < 1.5, "revoked key still in force after a second"
            await anyio.sleep(0.05)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_keys_made_by_the_cli_and_the_bootstrap_key_work_with_the_cli(
    start_server: Any, serve_env: dict[str, str]
) -> None:
    bootstrap = new_secret()
    made = _cli(
        serve_env,
        "keys",
        "create",
        "--name",
        "ci",
        "--role",
        "client",
        "--json",
        "--expires-in",
        "90d",
    )
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["role"] == "client"
    assert created["expires_at"]
    server = start_server(TASKBEAT_BOOTSTRAP_ADMIN_KEY=bootstrap)
    env = {**serve_env, "TASKBEAT_URL": server.url}
    assert httpx.get(f"{server.url}/v1/tasks", timeout=5).status_code == 401
    unkeyed = _cli(env, "tasks", "list", "--json")
    assert unkeyed.returncode == 1
    assert "401" in unkeyed.stderr
    keyed = _cli(env, "tasks", "list", "--json", "--api-key", created["secret"])
    assert keyed.returncode == 0, keyed.stderr
    from_env = _cli({**env, "TASKBEAT_API_KEY": bootstrap}, "stats", "--json")
    assert from_env.returncode == 0, from_env.stderr
    listed = json.loads(_cli(serve_env, "keys", "list", "--json").stdout)["items"]
    assert {key["name"] for key in listed} == {"ci", "bootstrap-admin"}
    assert all("secret" not in key and "secret_sha256" not in key for key in listed)
    assert _cli(serve_env, "keys", "revoke", created["key_id"]).returncode == 0
    assert _cli(serve_env, "keys", "revoke", created["key_id"]).returncode == 1
    assert created["secret"] not in server.log_path.read_text()
