"""A token bucket per topic in Redis: one rate limit for every worker on every host.

A topic's bucket holds up to `burst` tokens and refills at `per_s` tokens a
second; running a task costs one. The bucket lives in one Redis hash and each
take or give-back is one Lua script, so the workers of every host share it
without races, and the script reads Redis's clock, so hosts whose clocks
disagree still share one rate.

Hand-written rather than a library: the slice loop needs to take *up to* a
batch's worth of tokens and learn when the rest return (to end its slice and
queue the lane's next turn for then), and to give back tokens a batch did not
use. `limits` and `pyrate-limiter` grant a whole cost or nothing and keep
windows rather than a bucket with a burst; redis-cell (GCRA) is a Redis module,
which managed Redis services do not load.
"""

import math
from dataclasses import dataclass

import redis

from rotation.lanes import KEY_PREFIX, text

# Refill, then take min(wanted, whole tokens). When not all were granted, also
# answer how long until min(wanted, burst) tokens are back: the next turn waits
# that long, so a limited lane runs in chunks instead of one task per turn. An
# idle bucket is full, so its key may expire once it would have refilled.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local clock = redis.call('time')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('hmget', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local granted = math.min(wanted, math.floor(tokens))
tokens = tokens - granted
redis.call('hset', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('pexpire', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
local wait = 0
if granted < wanted then wait = (math.min(wanted, burst) - tokens) / rate end
return {granted, tostring(wait)}
"""
_GIVE_BACK = """
local burst = tonumber(ARGV[2])
local tokens = tonumber(redis.call('hget', KEYS[1], 'tokens'))
if tokens then
  tokens = math.min(burst, tokens + tonumber(ARGV[3]))
  redis.call('hset', KEYS[1], 'tokens', tostring(tokens))
end
return 1
"""


@dataclass(frozen=True)
class RateLimit:
    """At most `per_s` tasks a second on average, `burst` at once after a pause."""

    per_s: float
    burst: int


@dataclass(frozen=True)
class Grant:
    """Tokens taken, and (when fewer than wanted) the wait until enough return."""

    granted: int
    wait_s: float


def rate_limit_for(per_s: float | None, burst: int | None) -> RateLimit | None:
    """Build a topic's limit from its fields: no rate is no limit; no burst is
    one second's worth of tasks (at least one)."""
    if per_s is None:
        return None
    return RateLimit(per_s=per_s, burst=burst or max(1, math.ceil(per_s)))


def bucket_key(topic: str) -> str:
    """Name the Redis hash holding a topic's bucket."""
    return f"{KEY_PREFIX}:rate:{topic}"


class RateLimiter:
    """Take and give back tokens of topics' buckets."""

    def __init__(self, client: redis.Redis):
        self._take = client.register_script(_TAKE)
        self._give_back = client.register_script(_GIVE_BACK)

    def take(self, topic: str, limit: RateLimit, *, wanted: int) -> Grant:
        """Take up to `wanted` tokens from the topic's bucket."""
        granted, wait_s = self._take(
            keys=[bucket_key(topic)], args=[limit.per_s, limit.burst, wanted]
        )
        return Grant(granted=int(granted), wait_s=float(text(wait_s)))

    def give_back(self, topic: str, limit: RateLimit, count: int) -> None:
        """Return tokens taken for tasks that did not run (skipped, or the
        slice ended first), so they do not count against the rate."""
        if count > 0:
            self._give_back(
                keys=[bucket_key(topic)], args=[limit.per_s, limit.burst, count]
            )
