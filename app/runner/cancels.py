"""Cancel anywhere: a cancel asked on any replica reaches the replica that runs the task.

The message is only the fast path: the cancel is first recorded in the database, and the
owner also finds it at its next lease renewal, so a lost message only delays it.
"""

import logging
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus
from redis.exceptions import RedisError

from app.runner.loops import report_fault

if TYPE_CHECKING:
    from app.runner.runner import Runner

log = logging.getLogger(__name__)
RECONNECT_DELAY_S = 1.0
READ_TIMEOUT_S = 1.0


async def publish_cancel(runner: "Runner", task_id: str) -> None:
    try:
        await runner.live.client.publish(runner.live.keys.cancel_channel, task_id)
    except (RedisError, OSError) as exc:
        log.warning("task %s: cancel message not sent (%s); the owner sees it later", task_id, exc)


async def cancel_listener(
    runner: "Runner", *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Cancels local runs named on the cancel channel; resubscribes after any fault."""
    started = False
    while True:
        try:
            async with runner.live.client.pubsub() as pubsub:
                await pubsub.subscribe(runner.live.keys.cancel_channel)
                if not started:
                    started = True
                    task_status.started()
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=READ_TIMEOUT_S
                    )
                    if message is not None and message["type"] == "message":
                        task_id = str(message["data"])
                        try:
                            await runner.cancel_local(task_id)
                        except Exception as exc:
                            report_fault(f"cancel of task {task_id}", exc)
        except Exception as exc:
            report_fault("cancel channel (resubscribing)", exc)
            if not started:
                started = True
                task_status.started()
            await anyio.sleep(RECONNECT_DELAY_S)
