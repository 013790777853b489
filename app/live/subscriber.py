"""The replica's one Redis subscription, serving its channels: task updates (for local
waiters and runs), cancel requests (for the local runs) and work hints (for admission).
It resubscribes after any fault with backoff, starts even while Redis is away, and tells
the updates side to have its waiters re-read once it is back (messages may have been
missed meanwhile)."""

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import redis.asyncio as aioredis

from app.core.backoff import Backoff
from app.core.faults import report_fault
from app.live.keys import RedisKeys

RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 5.0


class Subscriber:
    def __init__(
        self,
        client: "aioredis.Redis",
        keys: RedisKeys,
        *,
        on_update: Callable[[str], None],
        on_cancel: Callable[[str], Awaitable[object]],
        on_resubscribed: Callable[[], None],
        on_work: Callable[[str], Awaitable[object]],
    ) -> None:
        self._client = client
        self._handlers: dict[str, Callable[[str], Awaitable[object] | None]] = {
            keys.updates_channel: on_update,
            keys.cancel_channel: on_cancel,
            keys.work_channel: on_work,
        }
        self._on_resubscribed = on_resubscribed

    async def _handle(self, message: dict[str, Any]) -> None:
        channel, data = str(message["channel"]), str(message["data"])
        try:
            handled = self._handlers[channel](data)
            if handled is not None:
                await handled
        except Exception as exc:
            report_fault(f"a message on {channel}", exc)

    async def _listen(self, pubsub: Any) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is not None and message.get("type") == "message":
                await self._handle(message)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Started by the composition root with `tg.start`; runs until cancelled."""
        started = False
        backoff = Backoff(RECONNECT_FIRST_S, RECONNECT_MAX_S)
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(*self._handlers)
                if started:
                    self._on_resubscribed()
                backoff.reset()
                if not started:
                    started = True
                    task_status.started()
                await self._listen(pubsub)
            except Exception as exc:
                report_fault("the subscription (resubscribing)", exc)
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            if not started:
                started = True
                task_status.started()
            await anyio.sleep(backoff.next_delay_s())
