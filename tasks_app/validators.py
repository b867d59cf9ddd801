"""Validators for names that must also be valid in Kafka, and handler names."""

import re

from django.core.exceptions import ValidationError

from tasks_app.handlers import HandlerNotRegistered, handler_get

KAFKA_NAME_MAX_CHARS = 249
_KAFKA_NAME = re.compile(r"[a-zA-Z0-9._-]+")  # fullmatch: "$" would allow a "\n"
# Kafka keeps names starting with "__" for itself (__consumer_offsets, ...).
KAFKA_RESERVED_PREFIX = "__"
KAFKA_TOPIC_RULE = (
    "A topic name is 1 to 249 characters of letters, digits, '.', '_' or '-', "
    "is not '.' or '..', and does not start with '__' (reserved by Kafka)."
)
# The same rule as one regular expression, for the API schema.
KAFKA_TOPIC_PATTERN = r"^(?!__)(?!\.{1,2}$)[a-zA-Z0-9._-]{1,249}$"


def validate_kafka_topic_name(name: str) -> None:
    """Apply Kafka's own topic-name rule, so a topic accepted here exists in Kafka."""
    if (
        not name
        or len(name) > KAFKA_NAME_MAX_CHARS
        or name in {".", ".."}
        or name.startswith(KAFKA_RESERVED_PREFIX)
        or not _KAFKA_NAME.fullmatch(name)
    ):
        raise ValidationError(
            f"Invalid topic name {name[:60]!r}. {KAFKA_TOPIC_RULE}", code="topic_name"
        )


def validate_registered_handler(name: str) -> None:
    """Accept only a name in the handler registry: workers run nothing else."""
    try:
        handler_get(name)
    except HandlerNotRegistered as exc:
        raise ValidationError(str(exc), code="handler_not_registered") from exc


def validate_dotted_path(path: str) -> None:
    """Require `package.module.callable` (kept for migration 0001, which names it)."""
    parts = path.split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise ValidationError(
            f"Handler {path!r} must be a dotted path such as "
            "'tasks_app.handlers.log_message'.",
            code="handler_path",
        )
