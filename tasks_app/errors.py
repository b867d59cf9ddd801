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
    """A backing service (PostgreSQL, Redis, Kafka) did not answer.

    Every 503 of the site is one of these, answered with the service's name and
    a Retry-After: a service that dropped out is usually back within seconds.
    """

    status_code = 503
    code = "service_unavailable"
    retry_after_s = 5

    @classmethod
    def down(cls, service: str, *, so: str) -> "ServiceUnavailable":
        """Build the answer for a service that is down, saying what it cost (`so`)
        and which setting names it."""
        name, setting = SERVICES[service]
        return cls(
            f"{name} is unreachable, so {so}. Retry shortly; if it persists, check "
            f"the {name} server and {setting}.",
            service=service,
        )

    def body(self) -> dict[str, Any]:
        """Return the answer's JSON body."""
        body = {"detail": self.message, "code": self.code}
        if self.field:
            body["field"] = self.field
        return {**body, "service": self.context.get("service", "")}


# The services a 503 may name: their display name and the setting pointing at them.
SERVICES = {
    "postgresql": ("PostgreSQL", "DATABASE_URL"),
    "redis": ("Redis", "REDIS_URL"),
    "kafka": ("Kafka", "KAFKA_BOOTSTRAP_SERVERS"),
}
