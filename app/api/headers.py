"""Defensive headers on every answer: no MIME sniffing, no referrer, no caching."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFENSIVE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # task data changes under the client's feet and may be private: never cache it
    "Cache-Control": "no-store",
}
RAW = [(name.lower().encode(), value.encode()) for name, value in DEFENSIVE_HEADERS.items()]
NAMES = {name for name, _ in RAW}


class DefensiveHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":  # they replace any the app set
                kept = [item for item in message.get("headers", ()) if item[0].lower() not in NAMES]
                message["headers"] = kept + RAW
            await send(message)

        await self.app(scope, receive, send_with_headers)
