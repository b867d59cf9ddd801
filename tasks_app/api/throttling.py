"""Per-user request limits that survive a Redis outage.

The counts live in Redis so every web process shares them. Accepting tasks must
not depend on Redis (PostgreSQL alone stores them), so while Redis is down each
process counts its own requests instead: the limit holds per process, looser
but still a limit, and one log line a minute says so.
"""

import logging
import time
from typing import TYPE_CHECKING

import redis
from django.core.cache.backends.locmem import LocMemCache
from rest_framework.throttling import UserRateThrottle

if TYPE_CHECKING:  # rest_framework.views imports this module via its settings
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

# Repeat the "Redis is down" line at most this often per process.
WARN_EVERY_S = 60.0


class SharedUserRateThrottle(UserRateThrottle):
    """UserRateThrottle, falling back to process-local counts without Redis."""

    local_cache = LocMemCache("throttle-fallback", {})
    _warned_at = -WARN_EVERY_S

    def allow_request(self, request: "Request", view: "APIView") -> bool:
        try:
            return super().allow_request(request, view)
        except redis.RedisError as exc:
            self._warn(exc)
            self.cache = self.local_cache
            return super().allow_request(request, view)

    @classmethod
    def _warn(cls, exc: Exception) -> None:
        now = time.monotonic()
        if now - cls._warned_at >= WARN_EVERY_S:
            cls._warned_at = now
            logger.warning(
                "Redis is unreachable (%s): the rate limit counts requests in this "
                "process until it is back (API_THROTTLE_RATE per process); check "
                "the Redis server and REDIS_URL",
                exc,
            )
