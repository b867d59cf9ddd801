"""Handlers for the benchmarks, registered through SCHEDULER_HANDLER_MODULES."""

import time
from typing import Any

from tasks_app.handlers import TaskContext, register_handler


@register_handler
def sleep(message: Any, context: TaskContext) -> None:
    """Wait `sleep_ms`, as a handler that calls another service does."""
    time.sleep(message["sleep_ms"] / 1000)


@register_handler
def fail_first(message: Any, context: TaskContext) -> None:
    """Fail the first `fail_attempts` attempts, as a handler whose service is
    down for a while does."""
    if context.attempt <= message["fail_attempts"]:
        raise RuntimeError(f"planned failure on attempt {context.attempt}")
