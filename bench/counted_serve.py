"""`python -m bench.counted_serve serve ...`: `taskbeat serve` with every Redis round trip
counted at the client, for the scale workload's "round trips per heartbeat tick".

Only the bench runs this. It wraps redis-py's async connection before the service starts:
each `send_packed_command` is one round trip (a pipeline is one; so is an EVALSHA), and
the commands packed for it are its commands. Every trip is logged with its wall-clock
time, the commands' names and the service code that sent it (the innermost `app.` frames),
and the log is written as JSON to `$BENCH_REDIS_TRIPS` when the service exits.
"""

import json
import os
import signal
import sys
import time
from collections import deque
from types import FrameType
from typing import Any

from redis.asyncio.connection import AbstractConnection

# (unix time, sent from, command names); bounded so that a long fill cannot grow it forever
TRIPS: deque[tuple[float, str, list[str]]] = deque(maxlen=200_000)
_packed = AbstractConnection.pack_command
_send = AbstractConnection.send_packed_command


# Wrappers that say nothing about who sent a command.
_PLUMBING = ("_tolerant", "with_scripts", "LuaScript.run", "<locals>")


def _sender(frame: FrameType | None) -> str:
    """The innermost three frames of the service's own code (wrappers left out),
    outermost first."""
    names: list[str] = []
    while frame is not None and len(names) < 3:
        module = frame.f_globals.get("__name__", "")
        name = frame.f_code.co_qualname
        if module.startswith("app.") and not any(part in name for part in _PLUMBING):
            names.append(f"{module.removeprefix('app.')}:{name}")
        frame = frame.f_back
    return " > ".join(reversed(names)) or "?"


def _pack_command(self: Any, *args: Any) -> Any:
    name = args[0] if args else b"?"
    name = name.decode() if isinstance(name, bytes) else str(name)
    self.__dict__.setdefault("_bench_pending", []).append(name.lower())
    return _packed(self, *args)


async def _send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
    names = self.__dict__.pop("_bench_pending", [])
    TRIPS.append((time.time(), _sender(sys._getframe(1)), names))
    await _send(self, command, check_health)


def _write() -> None:
    path = os.environ.get("BENCH_REDIS_TRIPS")
    if path:
        with open(path, "w") as out:
            json.dump(list(TRIPS), out)


def _exit(signum: int, _frame: FrameType | None) -> None:
    # uvicorn stops on SIGTERM, then raises it again with this handler back in place
    sys.exit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _exit)
    AbstractConnection.pack_command = _pack_command  # type: ignore[method-assign]
    AbstractConnection.send_packed_command = _send_packed_command  # type: ignore[method-assign]
    from app.cli import main as taskbeat

    try:
        taskbeat()
    finally:
        _write()


if __name__ == "__main__":
    main()
