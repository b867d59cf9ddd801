"""Task handlers: the registry workers run them from, and the built-in handlers.

A handler is a callable `handler(message, context) -> result` where `result`
is JSON-serialisable, registered with `@register_handler`. Delivery is
at-least-once (a crash mid-handler runs the task again), so handlers must be
idempotent; see docs/handlers.md.
"""

import logging
from typing import Any

from tasks_app.handlers.registry import (
    Handler,
    HandlerNotRegistered,
    HandlerRegistry,
    TaskContext,
    handler_get,
    handler_names,
    handlers_discover,
    register_handler,
)

__all__ = [
    "Handler",
    "HandlerNotRegistered",
    "HandlerRegistry",
    "TaskContext",
    "handler_get",
    "handler_names",
    "handlers_discover",
    "log_message",
    "noop",
    "register_handler",
]

logger = logging.getLogger(__name__)


@register_handler
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


@register_handler
def noop(message: Any, context: TaskContext) -> None:
    """Do nothing; for benchmarks of the scheduler itself."""
