"""A Server-Sent Events answer written by a coroutine, not a generator: the coroutine may
own task groups (a generator that yields inside one breaks structured concurrency), and the
stream stops when the client goes away."""

import contextlib
from collections.abc import Awaitable, Callable

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

Emit = Callable[[str], Awaitable[None]]
Producer = Callable[[Emit], Awaitable[None]]


class EventStream(Response):
    media_type = "text/event-stream"

    def __init__(self, produce: Producer) -> None:
        super().__init__(headers={"X-Accel-Buffering": "no"})
        # no Content-Length: 0 (what an empty Response says); the body streams until done
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.produce = produce

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

        async def emit(text: str) -> None:
            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})

        async with anyio.create_task_group() as tg:

            async def until_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(until_disconnect)
            try:
                await self.produce(emit)
            finally:
                tg.cancel_scope.cancel()
        with anyio.move_on_after(1, shield=True), contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
