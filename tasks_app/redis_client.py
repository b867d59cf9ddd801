"""One Redis connection pool per process, created lazily (and anew after fork)."""

import os

import redis
from django.conf import settings

_clients: dict[int, redis.Redis] = {}


def redis_client() -> redis.Redis:
    """Return this process's Redis client; a forked child gets its own pool."""
    pid = os.getpid()
    if pid not in _clients:
        _clients.clear()
        _clients[pid] = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=3
        )
    return _clients[pid]
