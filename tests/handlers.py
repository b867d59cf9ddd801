"""Handlers for the rotation tests: they record what ran, where and when, in Redis.

Each run appends `start` and `end` entries to the list `test:runs:<topic>`, so a
test can check order, overlap and which member (and process) ran what. The
message may ask for a sleep (`sleep_ms`), for its first attempts to fail
(`fail_attempts`), for its worker to die mid-handler (`die`), or to wait until
the test pushes to a Redis list (`wait_for`: the list's name). The test run
lists this module in SCHEDULER_HANDLER_MODULES (tests/stack_plugin.py), so the
test process and the workers it starts register `record`.

Entries go to the Redis at TEST_RECORD_URL when it is set, else to REDIS_URL. The
chaos suite sets it to a Redis of its own that no scenario restarts, so the
record survives the application's Redis restarted empty; each entry is one
RPUSH before the handler goes on, so a start written just before its worker is
SIGKILLed is kept.
"""

import functools
import json
import os
import time
from typing import Any

import redis

from tasks_app.handlers import TaskContext, register_handler

RECORD_URL_VAR = "TEST_RECORD_URL"
HANDLER_PATH = "tests.handlers.record"
# A gated handler gives up waiting after this long, so a failed test never
# leaves its worker stuck.
GATE_TIMEOUT_S = 60


@functools.cache
def _redis() -> redis.Redis:
    url = os.environ.get(RECORD_URL_VAR) or os.environ["REDIS_URL"]
    return redis.Redis.from_url(url)


def runs_key(topic: str) -> str:
    """Name the Redis list holding a topic's recorded runs."""
    return f"test:runs:{topic}"


def _note(context: TaskContext, phase: str) -> None:
    entry = {
        "task": context.task_id,
        "phase": phase,
        "t": time.time(),
        "worker": context.worker,
        "pid": os.getpid(),
        "offset": context.offset,
        "attempt": context.attempt,
    }
    _redis().rpush(runs_key(context.topic), json.dumps(entry))


@register_handler
def record(message: Any, context: TaskContext) -> Any:
    """Record start and end around an optional sleep, planned failure or death."""
    _note(context, "start")
    if isinstance(message, dict) and message.get("die"):
        os._exit(1)  # the worker dies mid-handler: a segfault, an OOM kill
    if isinstance(message, dict) and message.get("wait_for"):
        _redis().blpop([message["wait_for"]], timeout=GATE_TIMEOUT_S)
    if isinstance(message, dict) and message.get("sleep_ms"):
        time.sleep(message["sleep_ms"] / 1000)
    if isinstance(message, dict) and context.attempt <= message.get("fail_attempts", 0):
        _note(context, "fail")
        raise RuntimeError(f"planned failure on attempt {context.attempt}")
    _note(context, "end")
    return {"attempt": context.attempt}


@register_handler
def fail_saying(message: Any, context: TaskContext) -> Any:
    """Fail with the message's `error` text, whatever characters it holds."""
    raise RuntimeError(message["error"])


def runs(topic: str) -> list[dict]:
    """Return the recorded runs of a topic, in the order they were written."""
    return [json.loads(raw) for raw in _redis().lrange(runs_key(topic), 0, -1)]
