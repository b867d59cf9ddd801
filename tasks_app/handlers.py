"""Task handlers: resolve a topic's dotted path, and the default handler.

A handler is any callable `handler(message, context) -> result` where `result`
is JSON-serialisable. Delivery is at-least-once (a crash mid-handler runs the
task again), so handlers must be idempotent; see docs/handlers.md.
"""

import functools
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskContext:
    """What a handler may want to know about the task it runs."""

    task_id: str
    topic: str
    key: str
    partition: int
    offset: int
    attempt: int
    timestamp_ms: int
    worker: str


Handler = Callable[[Any, TaskContext], Any]


class HandlerNotFound(Exception):
    """The topic names a handler that cannot be imported."""


@functools.lru_cache(maxsize=256)
def handler_resolve(path: str) -> Handler:
    """Import the callable at `path` (cached per process)."""
    module_name, _, attribute = path.rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise HandlerNotFound(
            f"Handler {path!r} cannot be imported ({exc}). Fix the topic's handler "
            "path or deploy the module to the workers."
        ) from exc
    if not callable(handler):
        raise HandlerNotFound(f"Handler {path!r} is not callable.")
    return handler


def log_message(message: Any, context: TaskContext) -> Any:
    """Log the seed scheduler's line for the message and return the message."""
    logger.info(
        "key: '%s', payload: '%s', topic: %s, partition: %d, offset: %d, "
        "timestamp: CreateTime(%d)",
        context.key,
        message,
        context.topic,
        context.partition,
        context.offset,
        context.timestamp_ms,
    )
    return message


def noop(message: Any, context: TaskContext) -> None:
    """Do nothing; for benchmarks of the scheduler itself."""
