"""A small typed client of the taskbeat REST API, blocking (`TaskbeatClient`) and async
(`AsyncTaskbeatClient`, asyncio or trio), over httpx.

    with TaskbeatClient("http://127.0.0.1:8000") as client:
        task = client.create("hello", {"duration_ms": 1000})
        task = client.wait(task.task_id, timeout_s=30)

Every error answer of the API raises `TaskbeatAPIError`; a server that cannot be reached
raises `TaskbeatConnectionError`; both are `TaskbeatClientError`s.
"""

from app.client._async.client import AsyncTaskbeatClient
from app.client._sync.client import TaskbeatClient
from app.client.errors import TaskbeatAPIError, TaskbeatClientError, TaskbeatConnectionError
from app.client.wire import DEFAULT_URL, TaskStreamEvent
from app.domain.models import TaskPage

__all__ = [
    "DEFAULT_URL",
    "AsyncTaskbeatClient",
    "TaskPage",
    "TaskStreamEvent",
    "TaskbeatAPIError",
    "TaskbeatClient",
    "TaskbeatClientError",
    "TaskbeatConnectionError",
]
