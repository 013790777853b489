"""The Lua scripts taskbeat runs in Redis, each registered once by its SHA-1 and run with
EVALSHA (never sent whole with EVAL on every call); a Redis that forgot them (restarted)
gets them again on the NOSCRIPT answer, and the call is made once more."""

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

T = TypeVar("T")


@dataclass(frozen=True)
class LuaScript:
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    def queue(self, pipe: Any, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Adds one EVALSHA of the script to a pipeline."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)

    async def run(self, client: "aioredis.Redis", keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await with_scripts(client, lambda: client.evalsha(self.sha, len(keys), *keys, *args))


# Records one replica's running count of an algorithm, ignoring a write older than the last
# one applied (ARGV: replica, count, sequence), or drops a dead replica's share (ARGV:
# replica only); then sets active:{algorithm} to the sum over replicas: exact by construction.
SYNC_REPLICA_COUNT = LuaScript("""
local seq_field = ARGV[1] .. ':seq'
if #ARGV == 1 then
  redis.call('HDEL', KEYS[2], ARGV[1], seq_field)
elseif tonumber(ARGV[3]) > tonumber(redis.call('HGET', KEYS[2], seq_field) or '-1') then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2], seq_field, ARGV[3])
end
local total = 0
local fields = redis.call('HGETALL', KEYS[2])
for i = 1, #fields, 2 do
  if not string.find(fields[i], ':seq', 1, true) then total = total + tonumber(fields[i + 1]) end
end
redis.call('SET', KEYS[1], total)
return total
""")

# One replica's beat: KEYS heartbeats, progress, task-replica, replicas; ARGV hb key prefix,
# now, TTL, replica id, its beat time, and a JSON object {task_id: progress}. For each task:
# its hb key, its heartbeats score, its progress and its replica; then the replica's score.
BEAT = LuaScript("""
local hb_prefix, now, ttl, replica = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local scores, progress, owners = {}, {}, {}
for task_id, value in pairs(cjson.decode(ARGV[6])) do
  redis.call('SET', hb_prefix .. task_id, now, 'EX', ttl)
  table.insert(scores, now); table.insert(scores, task_id)
  table.insert(progress, task_id); table.insert(progress, value)
  table.insert(owners, task_id); table.insert(owners, replica)
end
local function in_chunks(command, key, args)
  for i = 1, #args, 1000 do
    redis.call(command, key, unpack(args, i, math.min(i + 999, #args)))
  end
end
in_chunks('ZADD', KEYS[1], scores)
in_chunks('HSET', KEYS[2], progress)
in_chunks('HSET', KEYS[3], owners)
redis.call('ZADD', KEYS[4], ARGV[5], replica)
return #scores / 2
""")

# Releases a lock only if its holder's token still holds it (KEYS lock; ARGV token).
RELEASE_LOCK = LuaScript("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")

ALL_SCRIPTS = (SYNC_REPLICA_COUNT, BEAT, RELEASE_LOCK)


async def register_all(client: "aioredis.Redis") -> None:
    """SCRIPT LOAD of every script: at start, and again after a NOSCRIPT answer."""
    for script in ALL_SCRIPTS:
        await client.script_load(script.source)


async def with_scripts(client: "aioredis.Redis", call: Callable[[], Awaitable[T]]) -> T:
    """Makes `call` (which may run scripts); if Redis had forgotten them, registers them and
    makes it once more. Every use is idempotent, so a partly applied first try is harmless."""
    try:
        return await call()
    except NoScriptError:
        await register_all(client)
        return await call()
