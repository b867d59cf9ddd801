"""Topics (a Kafka topic plus its execution policy) and consumer groups."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from tasks_app.validators import (
    validate_kafka_topic_name,
    validate_registered_handler,
)

DEFAULT_HANDLER = "tasks_app.handlers.log_message"
MAX_PARTITIONS = 1000


def default_slice_ms() -> int:
    """Read the deploy's default slice length when a topic is created."""
    return settings.SCHEDULER_DEFAULT_SLICE_MS


class Topic(models.Model):
    """A Kafka topic and the policy its tasks run under."""

    name = models.CharField(
        max_length=249,
        unique=True,
        validators=[validate_kafka_topic_name],
        help_text="Kafka topic name: 1-249 of [a-zA-Z0-9._-], not '.' or '..', "
        "not starting with '__'.",
    )
    partitions = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_PARTITIONS)],
        help_text="Kafka partitions; each (group, topic, partition) is one lane.",
    )
    slice_ms = models.PositiveIntegerField(
        default=default_slice_ms,
        validators=[MinValueValidator(10), MaxValueValidator(600_000)],
        help_text="Length of one worker's turn on a lane of this topic, in ms.",
    )
    weight = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Share of processing time relative to other backlogged topics.",
    )
    handler = models.CharField(
        max_length=255,
        default=DEFAULT_HANDLER,
        validators=[validate_registered_handler],
        help_text="Registered name of the handler that runs each task "
        "(see docs/handlers.md).",
    )
    max_attempts = models.PositiveIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Attempts before a failing task is dead and sent to <topic>.dlq.",
    )
    retry_backoff_ms = models.PositiveIntegerField(
        default=1000,
        validators=[MaxValueValidator(3_600_000)],
        help_text="Wait before the first retry, in ms; doubles on each attempt.",
    )
    paused = models.BooleanField(
        default=False, help_text="A paused topic's lanes get no turns."
    )
    kafka_error = models.TextField(
        blank=True,
        default="",
        help_text="The broker's reason when creating the topic in Kafka failed.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def dead_letter_topic(self) -> str:
        """Name the topic that receives envelopes of tasks that are dead."""
        return f"{self.name}.dlq"


class WalkMode(models.TextChoices):
    """How a group spreads its members over its topics."""

    PARALLEL = "parallel", "Parallel: lanes of different topics run at once"
    SEQUENTIAL = "sequential", "Sequential: one topic at a time, a slice per member"


class ConsumerGroup(models.Model):
    """A Kafka consumer group: its own offsets over its own set of topics."""

    group_id = models.CharField(
        max_length=249,
        unique=True,
        validators=[validate_kafka_topic_name],
        help_text="Kafka group.id; same character rules as topic names.",
    )
    topics = models.ManyToManyField(
        Topic,
        related_name="groups",
        blank=True,
        help_text="Topics this group consumes.",
    )
    walk_mode = models.CharField(
        max_length=16,
        choices=WalkMode.choices,
        default=WalkMode.PARALLEL,
        help_text="Parallel (default) or sequential, as the Rust scheduler walked.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["group_id"]

    def __str__(self) -> str:
        return self.group_id
