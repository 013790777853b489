"""Requests per second per API key, counted in Redis so that the limit holds over every
replica: one counter per key and unix second (INCR, then EXPIRE, in one round trip)."""

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.live.keys import RATE_WINDOW_TTL_S, RedisKeys

log = logging.getLogger(__name__)


class RequestRate:
    def __init__(self, redis: "aioredis.Redis", keys: RedisKeys) -> None:
        self.redis = redis
        self.keys = keys

    async def over_limit(self, key_id: str, limit_per_s: int) -> float | None:
        """Counts one request of the key; seconds until its next window when it is over
        `limit_per_s`, else None. Fails open: with Redis away the request is not limited
        (a limit that took the API down with Redis would be worse than a burst)."""
        now = time.time()
        second = int(now)
        counter = self.keys.key_requests(key_id, second)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incr(counter)
                pipe.expire(counter, RATE_WINDOW_TTL_S)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("request rate not counted (Redis unavailable): %s", exc)
            return None
        if int(count) <= limit_per_s:
            return None
        return second + 1 - now
