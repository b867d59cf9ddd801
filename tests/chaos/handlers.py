"""The chaos suite's handler: a few milliseconds of work, every start and end recorded.

Runs are recorded in a Redis the harness starts for this alone and never
restarts, so the record survives every fault the scenarios inject (the
application's own Redis restarted empty included). Each entry is one RPUSH, one
atomic round trip before the handler goes on, so a start written just before
its worker is SIGKILLed is kept. An append-only file per process would survive
as well, but would need merging and flushing; one server gives one list per
topic, readable at any time.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

import redis

if TYPE_CHECKING:
    from tasks_app.handlers import TaskContext

RECORD_URL_VAR = "CHAOS_RECORD_URL"
HANDLER_PATH = "tests.chaos.handlers.record"

_clients: dict[int, redis.Redis] = {}


def runs_key(topic: str) -> str:
    """Name the recorder's list holding a topic's runs, in the order written."""
    return f"chaos:runs:{topic}"


def _recorder() -> redis.Redis:
    """Return this process's client for the recording Redis (one per fork)."""
    pid = os.getpid()
    if pid not in _clients:
        _clients[pid] = redis.Redis.from_url(os.environ[RECORD_URL_VAR])
    return _clients[pid]


def _note(message: dict, context: TaskContext, phase: str) -> None:
    entry = {
        "task": context.task_id,
        "n": message.get("n"),
        "phase": phase,
        "t": time.time(),
        "pid": os.getpid(),
        "worker": context.worker,
        "attempt": context.attempt,
        "offset": context.offset,
    }
    _recorder().rpush(runs_key(context.topic), json.dumps(entry))


def record(message: Any, context: TaskContext) -> dict:
    """Record the start, sleep `sleep_ms` (the work), record the end."""
    message = message if isinstance(message, dict) else {}
    _note(message, context, "start")
    time.sleep(message.get("sleep_ms", 0) / 1000)
    _note(message, context, "end")
    return {"n": message.get("n")}
