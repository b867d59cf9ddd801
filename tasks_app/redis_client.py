"""The process's Redis client (one connection pool), built on first use."""

import functools

import redis
from django.conf import settings


@functools.cache
def redis_client() -> redis.Redis:
    """Return this process's Redis client.

    Web and worker processes build it after they start (gunicorn and Celery
    load the app in each process), so no pool crosses a fork.
    """
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=3
    )
