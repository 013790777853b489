"""Engines that call back: a real HTTP test engine on a loopback port, signed callbacks."""

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from conftest import AppClient
from helpers import create, eventually, wait_for
from servers import Engine, free_port, serve

pytestmark = pytest.mark.anyio
SECRET = "engine-secret"


def signed(
    task_id: str, body: dict[str, Any], secret: str = SECRET, at: int | None = None
) -> dict[str, Any]:
    """What an engine sends: the raw body and its signature header (as the README signs)."""
    raw = json.dumps(body).encode()
    timestamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{timestamp}.{task_id}.".encode() + raw, hashlib.sha256)
    header = f"t={timestamp},v2={digest.hexdigest()}"
    return {"content": raw, "headers": {"X-Taskbeat-Signature": header}}


@pytest.fixture
async def engine() -> AsyncIterator[tuple[Engine, str]]:
    test_engine = Engine()
    async with serve(test_engine.app()) as url:
        yield test_engine, url


@pytest.fixture
async def client(app_client: AppClient, engine: tuple[Engine, str]) -> AsyncIterator[Any]:
    test_engine, url = engine
    unreachable = {
        **test_engine.config(url, name="unreachable"),
        "result_url": f"http://127.0.0.1:{free_port()}/jobs/{{job_id}}",
    }
    settings = {
        "remote_algorithms": [test_engine.config(url), unreachable],
        "callback_secret": SECRET,
        "callback_secret_previous": "old-secret",
        "poll_interval_s": 0.2,
        "max_attempts": 1,  # a failure ends the task: no retry to wait for
    }
    async with app_client(**settings) as c:
        yield c


async def start_remote(client: httpx.AsyncClient, name: str = "engine", **fields: Any) -> str:
    body = {"algorithm": name, "input": fields}
    response = await client.post("/v1/tasks", json=body)
    assert response.status_code == 202, response.text
    task_id = str(response.json()["task_id"])
    await wait_for(client, task_id, {"running"})
    return task_id


async def test_an_engine_job_ends_by_poll(client: Any, engine: tuple[Engine, str]) -> None:
    test_engine, _ = engine
    task_id = await start_remote(client, size=3)
    await eventually(lambda: _ready(test_engine, task_id))
    assert test_engine.submitted[0] == {"task_id": task_id, "input": {"size": 3}}
    test_engine.set(task_id, state="succeeded", progress=100, result={"area": 9})
    task = await wait_for(client, task_id)
    assert task["status"] == "succeeded"
    assert task["result"] == {"area": 9}
    assert test_engine.polls >= 1


async def _ready(test_engine: Engine, task_id: str) -> bool:
    return any(job["task_id"] == task_id for job in test_engine.jobs.values())


async def test_progress_and_result_by_callback(client: Any, engine: tuple[Engine, str]) -> None:
    test_engine, _ = engine
    task_id = await start_remote(client)
    await eventually(lambda: _ready(test_engine, task_id))
    url = f"/v1/tasks/{task_id}/callback"

    response = await client.post(url, **signed(task_id, {"progress": 40}))
    assert response.status_code == 200, response.text
    assert response.json()["progress"] == 40
    assert (await client.get(f"/v1/tasks/{task_id}")).json()["progress"] == 40

    started = time.monotonic()
    response = await client.post(
        url, **signed(task_id, {"status": "succeeded", "result": {"n": 1}})
    )
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 2  # the run was woken, not polled
    task = response.json()
    assert task["status"] == "succeeded"
    assert task["result"] == {"n": 1}
    assert test_engine.jobs[test_engine.job_of(task_id)]["state"] == "running"

    # A finished task never changes again.
    response = await client.post(url, **signed(task_id, {"status": "failed", "error": "late"}))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


async def test_a_failure_reported_by_callback(client: Any, engine: tuple[Engine, str]) -> None:
    test_engine, _ = engine
    task_id = await start_remote(client)
    await eventually(lambda: _ready(test_engine, task_id))
    response = await client.post(
        f"/v1/tasks/{task_id}/callback",
        **signed(task_id, {"status": "failed", "error": "out of memory"}, secret="old-secret"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "failed"
    assert response.json()["error"] == "out of memory"


async def test_an_engine_answer_that_is_not_storable_json_is_never_stored(
    client: Any, engine: tuple[Engine, str]
) -> None:
    test_engine, _ = engine
    task_id = await start_remote(client)
    await eventually(lambda: _ready(test_engine, task_id))
    answer = b'{"state": "succeeded", "progress": 100, "result": {"area": NaN}}'
    test_engine.set(task_id, raw=answer)
    task = await wait_for(client, task_id, timeout_s=15)
    assert (task["status"], task["result"]) == ("failed", None)
    assert "failed polls in a row" in task["error"]


async def test_an_engine_that_cannot_be_polled_fails_the_task(client: Any) -> None:
    task_id = await start_remote(client, name="unreachable")
    task = await wait_for(client, task_id, timeout_s=15)
    assert task["status"] == "failed"
    assert "6 failed polls in a row" in task["error"]
    assert task["poll_failures"] == 6


async def test_an_engine_answering_5xx_fails_the_task(
    client: Any, engine: tuple[Engine, str]
) -> None:
    test_engine, _ = engine
    test_engine.poll_status_code = 503
    task_id = await start_remote(client)
    task = await wait_for(client, task_id, timeout_s=15)
    assert task["status"] == "failed"
    assert "503" in task["error"]


async def test_cancel_reaches_the_engine(client: Any, engine: tuple[Engine, str]) -> None:
    test_engine, _ = engine
    task_id = await start_remote(client)
    await eventually(lambda: _ready(test_engine, task_id))
    response = await client.post(f"/v1/tasks/{task_id}/cancel")
    assert response.json()["status"] == "cancelled"
    assert test_engine.cancelled == [test_engine.job_of(task_id)]


async def test_callbacks_refuse_bad_stale_and_replayed_signatures(
    client: Any, engine: tuple[Engine, str]
) -> None:
    test_engine, _ = engine
    task_id = await start_remote(client)
    await eventually(lambda: _ready(test_engine, task_id))
    url = f"/v1/tasks/{task_id}/callback"

    def refused(response: httpx.Response, words: str) -> None:
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
        assert words in response.json()["error"]["message"]

    refused(await client.post(url, json={"progress": 5}), "missing")
    refused(
        await client.post(url, **signed(task_id, {"progress": 5}, secret="wrong")), "bad signature"
    )
    tampered = signed(task_id, {"progress": 5})
    tampered["content"] = b'{"progress": 99}'
    refused(await client.post(url, **tampered), "bad signature")
    stale = signed(task_id, {"progress": 5}, at=int(time.time()) - 301)
    refused(await client.post(url, **stale), "stale")
    garbled = {"content": b"{}", "headers": {"X-Taskbeat-Signature": "t=1,v2=abc"}}
    refused(await client.post(url, **garbled), "t=<unix seconds>")
    # the old scheme signed "<t>.<body>", valid for any task: refused, and the answer says why
    old = signed(task_id, {"progress": 5})
    old["headers"]["X-Taskbeat-Signature"] = old["headers"]["X-Taskbeat-Signature"].replace(
        "v2=", "v1="
    )
    refused(await client.post(url, **old), "v1 signatures are no longer accepted")

    once = signed(task_id, {"progress": 10})
    assert (await client.post(url, **once)).status_code == 200
    refused(await client.post(url, **once), "replayed")

    illegal = await client.post(url, **signed(task_id, {"status": "timed_out"}))
    assert illegal.status_code == 409
    assert (await client.get(f"/v1/tasks/{task_id}")).json()["status"] == "running"
    bad_body = await client.post(url, **signed(task_id, {"progress": 101}))
    assert bad_body.status_code == 422
    assert (await client.post("/v1/tasks/nope/callback", **signed("nope", {}))).status_code == 404
    await client.post(f"/v1/tasks/{task_id}/cancel")


async def test_a_callback_finishes_a_task_run_by_another_replica(
    app_client: AppClient,
) -> None:
    async with (
        app_client(callback_secret=SECRET) as a,
        app_client(callback_secret=SECRET) as b,
    ):
        task = await create(a, hang=True)
        task_id = task["task_id"]
        await wait_for(a, task_id, {"running"})
        response = await b.post(
            f"/v1/tasks/{task_id}/callback", **signed(task_id, {"status": "succeeded", "result": 7})
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "succeeded"
        assert response.json()["result"] == 7
        runner = a.app.state.context.runner  # type: ignore[attr-defined]

        async def stopped() -> bool:
            return runner.local_run(task_id) is None

        await eventually(stopped)
        with anyio.fail_after(5):
            final = (await a.get(f"/v1/tasks/{task_id}")).json()
        assert final["status"] == "succeeded"


async def test_no_secret_means_callbacks_are_disabled(app_client: AppClient) -> None:
    async with app_client() as plain:
        task = await create(plain, duration_ms=0)
        response = await plain.post(
            f"/v1/tasks/{task['task_id']}/callback", **signed(task["task_id"], {})
        )
        assert response.status_code == 401
        assert "TASKBEAT_CALLBACK_SECRET" in response.json()["error"]["message"]


async def test_a_callback_signed_for_one_task_is_refused_on_another(
    client: Any, engine: tuple[Engine, str]
) -> None:
    test_engine, _ = engine
    task_a, task_b = await start_remote(client), await start_remote(client)
    await eventually(lambda: _ready(test_engine, task_b))
    for_a = signed(task_a, {"status": "succeeded", "result": "forged"})
    response = await client.post(f"/v1/tasks/{task_b}/callback", **for_a)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Taskbeat-Signature")
    assert "bad signature" in response.json()["error"]["message"]
    assert (await client.get(f"/v1/tasks/{task_b}")).json()["status"] == "running"
    # the same report, signed for its own task, goes through once
    response = await client.post(f"/v1/tasks/{task_a}/callback", **for_a)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "forged"
    await client.post(f"/v1/tasks/{task_b}/cancel")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"status": "succeeded", "result": 1e309}', "out of range"),
        (b'{"status": "succeeded", "result": NaN}', "not valid JSON"),
        (b'{"status": "succeeded", "result": -Infinity}', "not valid JSON"),
        (b'{"status": "succeeded", "result": "a\\u0000b"}', "NUL"),
        (b'{"progress": "40"}', "progress"),
        (b'{"progress": true}', "progress"),
        (b"\xff\xfe", "UTF-8"),
        (b"[" * 10_000 + b"]" * 10_000, "nested too deep"),
    ],
)
async def test_a_callback_result_must_be_storable_json(
    client: Any, engine: tuple[Engine, str], body: bytes, words: str
) -> None:
    test_engine, _ = engine
    task_id = await start_remote(client)
    await eventually(lambda: _ready(test_engine, task_id))
    timestamp = int(time.time())
    message = f"{timestamp}.{task_id}.".encode() + body
    digest = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
    headers = {"X-Taskbeat-Signature": f"t={timestamp},v2={digest}"}
    response = await client.post(f"/v1/tasks/{task_id}/callback", content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert words in response.json()["error"]["message"]
    assert (await client.get(f"/v1/tasks/{task_id}")).json()["status"] == "running"
    await client.post(f"/v1/tasks/{task_id}/cancel")


async def test_an_engine_with_its_own_secret_signs_with_it(
    app_client: AppClient, engine: tuple[Engine, str]
) -> None:
    test_engine, url = engine
    own = {**test_engine.config(url), "callback_secret": "engine-own-secret"}
    settings = {"remote_algorithms": [own], "callback_secret": SECRET, "poll_interval_s": 0.2}
    async with app_client(**settings) as client:
        task_id = await start_remote(client)
        await eventually(lambda: _ready(test_engine, task_id))
        url_ = f"/v1/tasks/{task_id}/callback"
        service_signed = signed(task_id, {"progress": 5})
        assert (await client.post(url_, **service_signed)).status_code == 401
        engine_signed = signed(task_id, {"progress": 5}, secret="engine-own-secret")
        assert (await client.post(url_, **engine_signed)).status_code == 200
