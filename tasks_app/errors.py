"""The package's root exception and its kinds, each mapped to one HTTP answer."""

from typing import Any


class SchedulerError(Exception):
    """A failure a person can act on; `message` says what to do about it."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, **context: Any):
        super().__init__(message)
        self.message = message
        self.field = field
        self.context = context


class InvalidInput(SchedulerError):
    """The request is well-formed but its content breaks a rule."""


class NotFound(SchedulerError):
    """The named object does not exist."""

    status_code = 404
    code = "not_found"


class Conflict(SchedulerError):
    """The object is in a state that forbids the operation."""

    status_code = 409
    code = "conflict"


class ServiceUnavailable(SchedulerError):
    """A backing service (PostgreSQL, Redis, Kafka) did not answer."""

    status_code = 503
    code = "service_unavailable"
