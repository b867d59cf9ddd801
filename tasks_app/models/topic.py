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
MAX_RETENTION_DAYS = 36_500


def default_slice_ms() -> int:
    """Read the deploy's default slice length when a topic is created."""
    return settings.SCHEDULER_DEFAULT_SLICE_MS


def dead_letter_topic_for(name: str) -> str:
    """Name the topic that receives the dead letters of topic `name`."""
    return f"{name}.dlq"


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
    rate_limit = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001), MaxValueValidator(1_000_000)],
        help_text="Most tasks a second the topic runs, across all workers and "
        "hosts (a lane that reaches it hands its turn on); empty: no limit.",
    )
    rate_burst = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(1_000_000)],
        help_text="Tasks that may run back to back above the rate after a quiet "
        "spell; empty: one second's worth (at least 1). Used with rate_limit.",
    )
    key_concurrency = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(64)],
        help_text="Handlers a lane runs at once for different keys (threads in "
        "its holder); each key still runs one task at a time, in order. 1: one "
        "task at a time, in offset order (see docs/handlers.md).",
    )
    retention_days = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(MAX_RETENTION_DAYS)],
        help_text="Days the topic's succeeded and cancelled tasks are kept before "
        "the periodic purge deletes them with their history; empty: "
        "SCHEDULER_RETENTION_DAYS; 0: kept until deleted. Dead tasks are kept "
        "until retried or purged on purpose.",
    )
    growth_barrier = models.JSONField(
        null=True,
        blank=True,
        help_text="Where each old partition's log ended when the partitions grew: "
        "later messages wait until every old partition has passed its end, so "
        "keys that moved keep their order. Cleared once passed.",
    )
    kafka_topic_id = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="Kafka's id of the topic when last checked; a new id means the "
        "topic was re-created and lost its messages.",
    )
    kafka_error = models.TextField(
        blank=True,
        default="",
        help_text="The broker's reason when creating the topic in Kafka failed.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # What the API, the admin and the config file may set besides the name.
    POLICY_FIELDS = (
        "partitions",
        "slice_ms",
        "weight",
        "handler",
        "max_attempts",
        "retry_backoff_ms",
        "paused",
        "rate_limit",
        "rate_burst",
        "key_concurrency",
        "retention_days",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def dead_letter_topic(self) -> str:
        """Name the topic that receives envelopes of tasks that are dead."""
        return dead_letter_topic_for(self.name)


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
    topics: "models.ManyToManyField[Topic, GroupTopic]" = models.ManyToManyField(
        Topic,
        through="GroupTopic",
        related_name="groups",
        blank=True,
        help_text="Topics this group consumes; a topic belongs to one group.",
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


class GroupTopic(models.Model):
    """A topic's membership of the one consumer group that consumes it.

    One group per topic: a task has one status, so two groups running the same
    tasks would overwrite each other's outcomes.
    """

    group = models.ForeignKey(
        ConsumerGroup, on_delete=models.CASCADE, db_column="consumergroup_id"
    )
    topic = models.OneToOneField(
        Topic, on_delete=models.CASCADE, related_name="membership"
    )

    class Meta:
        db_table = "tasks_app_consumergroup_topics"

    def __str__(self) -> str:
        return f"{self.topic_id} in {self.group_id}"
