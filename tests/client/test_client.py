"""app.client, sync and async, against a real `taskbeat serve` on a loopback port."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from serve_process import free_port

from app.client import (
    AsyncTaskbeatClient,
    TaskbeatAPIError,
    TaskbeatClient,
    TaskbeatClientError,
    TaskbeatConnectionError,
)
from app.domain.models import TaskStatus

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def server(start_server: Any) -> Any:
    return start_server()


def test_sync_client_create_wait_list_cancel(server: Any) -> None:
    with TaskbeatClient(server.url) as client:
        task = client.create("hello", {"duration_ms": 300}, timeout_s=60)
        assert task.status in (TaskStatus.PENDING, TaskStatus.RUNNING)
        assert task.timeout_s == 60
        done = client.wait(task.task_id, timeout_s=10)
        assert done.status == TaskStatus.SUCCEEDED
        assert done.result == {"output": "hello world"}
        assert client.get(task.task_id) == done

        hang = client.create("hello", {"hang": True})
        still = client.wait(hang.task_id, timeout_s=0.5)
        assert still.status == TaskStatus.RUNNING
        cancelled = client.cancel(hang.task_id)
        assert client.wait(cancelled.task_id, timeout_s=5).status == TaskStatus.CANCELLED
        with pytest.raises(TaskbeatAPIError) as conflict:
            client.cancel(hang.task_id)
        assert (conflict.value.status_code, conflict.value.code) == (409, "conflict")

        client.create("hello", {"duration_ms": 100})
        first = client.list(limit=2)
        assert len(first.items) == 2
        assert first.next_cursor is not None
        every = list(client.iter_tasks(page_size=1))
        assert [t.task_id for t in every][1:] == [hang.task_id, task.task_id]
        finished = client.list(status="succeeded")
        assert [t.task_id for t in finished.items] == [task.task_id]

        stats = client.stats()
        assert stats["totals"]["cancelled"] == 1
        assert [a["name"] for a in client.algorithms()] == ["hello"]


def test_sync_client_errors(server: Any) -> None:
    with TaskbeatClient(server.url) as client:
        with pytest.raises(TaskbeatAPIError) as missing:
            client.get("no-such-task")
        assert (missing.value.status_code, missing.value.code) == (404, "not_found")
        with pytest.raises(TaskbeatAPIError) as invalid:
            client.create("no-such-algorithm")
        assert (invalid.value.status_code, invalid.value.code) == (422, "invalid_request")
    with (
        TaskbeatClient(f"http://127.0.0.1:{free_port()}") as client,
        pytest.raises(TaskbeatConnectionError, match="cannot reach taskbeat") as unreachable,
    ):
        client.stats()
    assert isinstance(unreachable.value, TaskbeatClientError)
    assert isinstance(missing.value, TaskbeatClientError)


def test_sync_stream_ends_with_the_final_status(server: Any) -> None:
    with TaskbeatClient(server.url) as client:
        task = client.create("hello", {"duration_ms": 600, "steps": 3})
        events = list(client.stream(task.task_id, timeout_s=10))
    assert events, "no event before the stream ended"
    assert {e.event for e in events} <= {"status", "progress"}
    assert events[0].event == "status"
    assert events[-1].event == "status"
    assert events[-1].data["status"] == "succeeded"
    assert events[-1].data["result"] == {"output": "hello world"}


async def test_async_client(server: Any) -> None:
    async with AsyncTaskbeatClient(server.url) as client:
        task = await client.create("hello", {"duration_ms": 300})
        done = await client.wait(task.task_id, timeout_s=10)
        assert done.status == TaskStatus.SUCCEEDED
        assert (await client.get(task.task_id)).result == {"output": "hello world"}

        hang = await client.create("hello", {"hang": True})
        events = []
        async for event in client.stream(hang.task_id, timeout_s=0.5):
            events.append(event)
        assert events[0].event == "status"
        assert events[0].data["task_id"] == hang.task_id
        await client.cancel(hang.task_id)
        assert (await client.wait(hang.task_id, 5)).status == TaskStatus.CANCELLED

        listed = [t.task_id async for t in client.iter_tasks(page_size=1)]
        assert listed == [hang.task_id, task.task_id]
        assert (await client.list(algorithm="hello", limit=1)).next_cursor is not None
        assert (await client.stats())["totals"]["succeeded"] == 1
        assert (await client.algorithms())[0]["name"] == "hello"
        with pytest.raises(TaskbeatAPIError) as missing:
            await client.wait("no-such-task", 1)
        assert missing.value.status_code == 404
    async with AsyncTaskbeatClient(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(TaskbeatConnectionError):
            await client.get("x")


def test_sync_client_delayed_create_and_delete(server: Any) -> None:
    with TaskbeatClient(server.url) as client:
        at = datetime.now(UTC) + timedelta(seconds=1)
        task = client.create("hello", {"duration_ms": 50}, run_at=at)
        assert task.status == TaskStatus.PENDING
        assert task.run_at is not None
        assert abs(task.run_at - at) < timedelta(milliseconds=1)
        with pytest.raises(TaskbeatAPIError) as unfinished:
            client.delete(task.task_id)
        assert unfinished.value.status_code == 409
        done = client.wait(task.task_id, timeout_s=10)
        assert done.status == TaskStatus.SUCCEEDED
        assert done.started_at is not None
        assert done.started_at >= at
        later = client.create("hello", {"duration_ms": 50}, delay_s=30)
        assert later.run_at is not None
        assert later.run_at - later.created_at == timedelta(seconds=30)
        client.delete(task.task_id)
        with pytest.raises(TaskbeatAPIError) as gone:
            client.get(task.task_id)
        assert gone.value.status_code == 404
