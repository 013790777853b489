"""What every loop of a replica does with a fault: it logs it and goes on. An outage (Redis,
the database, the network) is one line; anything else is a bug and is logged with its
traceback. A loop never dies of a fault, so a replica never sits up with a dead loop."""

import logging
from collections.abc import Awaitable, Callable

import anyio
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)
# Redis is away (down, restarting, unreachable): what every Redis call tolerates.
REDIS_AWAY = (RedisError, OSError)
# An outage of a service the replica depends on, not a bug.
OUTAGES = (*REDIS_AWAY, SQLAlchemyError)


def report_fault(what: str, exc: Exception) -> None:
    if isinstance(exc, OUTAGES):
        log.warning("%s failed: %s", what, exc)
    else:
        log.error("%s failed on an unexpected error; going on", what, exc_info=exc)


async def every(interval_s: float, step: Callable[[], Awaitable[None]], *, what: str) -> None:
    """Runs `step` every `interval_s` (from the start of one to the start of the next) until
    cancelled, whatever it raises."""
    while True:
        started = anyio.current_time()
        try:
            await step()
        except Exception as exc:
            report_fault(what, exc)
        await anyio.sleep(max(0.0, interval_s - (anyio.current_time() - started)))
