"""A module no worker may import: importing it leaves a trace in Redis.

Nothing registers it. tests/test_handlers_on_workers.py writes the path of
`run` straight into a topic row; a worker that imported the module (or ran the
function) would push its pid to TRACE_KEY, so an empty list proves it did not.
"""

import os
from typing import Any

import redis

TRACE_KEY = "test:trace:leaves_a_trace"

redis.Redis.from_url(os.environ["REDIS_URL"]).rpush(
    TRACE_KEY, f"imported {os.getpid()}"
)


def run(message: Any, context: Any) -> str:
    """Leave a second trace, as code an attacker smuggled in would run."""
    redis.Redis.from_url(os.environ["REDIS_URL"]).rpush(TRACE_KEY, "ran")
    return os.environ.get("DATABASE_URL", "")
