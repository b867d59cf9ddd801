"""Tasks, their recorded history, and the outbox the publisher drains."""

from collections.abc import Collection, Iterable
from typing import Any

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from uuid_utils.compat import uuid7

from tasks_app.models.topic import Topic


class TaskStatus(models.TextChoices):
    """Life cycle: pending -> published -> running -> succeeded | failed | dead.

    `failed` means the last attempt failed and a retry is due; `cancelled` is only
    reachable from `pending`.
    """

    PENDING = "pending"
    PUBLISHED = "published"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


# Pages one BRIN summary covers: smaller ranges skip more pages of a narrow
# window for a slightly larger index (still a few kB per million tasks).
BRIN_PAGES_PER_RANGE = 32

TERMINAL_STATUSES = (TaskStatus.SUCCEEDED, TaskStatus.DEAD, TaskStatus.CANCELLED)
# Statuses few tasks are in; `Task.exceptional` marks them for their own indexes.
EXCEPTIONAL_STATUSES = (TaskStatus.FAILED, TaskStatus.DEAD, TaskStatus.CANCELLED)


class Task(models.Model):
    """One unit of work: a JSON message on a topic, run in order within its key.

    The auto-increment `id` is the task's sequence: submissions to one topic take
    a lock on the topic row first, so within a topic `id` order is commit order,
    and the publisher sends tasks to Kafka in `id` order.
    """

    # Time-ordered (version 7): new ids land at the end of the unique index,
    # and a batch's ids next to each other, however big the table grows.
    uuid = models.UUIDField(
        default=uuid7, unique=True, editable=False, help_text="Public task id."
    )
    # The three parents below have no foreign-key constraint: a constraint
    # checks every inserted task with a query of its own, a tenth of a bulk
    # submission's time. Triggers (migration 0024) check each statement's
    # tasks at once, lock their parents as a constraint's check does, and do
    # what `on_delete` says when a parent row is deleted in SQL.
    topic = models.ForeignKey(
        Topic,
        on_delete=models.PROTECT,
        db_constraint=False,
        db_index=False,  # the (topic, id) index below leads with it
        related_name="tasks",
        help_text="Topic.",
    )
    key = models.CharField(
        max_length=255,
        help_text="Kafka message key; tasks with one key run in submission order.",
    )
    message = models.JSONField(help_text="The JSON payload handed to the handler.")
    run_at = models.DateTimeField(
        null=True, blank=True, help_text="Not published before this time."
    )
    idempotency_key = models.CharField(  # noqa: DJ001 - NULL means "none given"
        max_length=255,
        null=True,
        blank=True,
        help_text="Client-chosen key; a repeat with the same body returns this task.",
    )
    request_hash = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="Hash of the submitted body, to tell a repeat from a conflict.",
    )
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        db_constraint=False,
        db_index=False,  # the (submitted_by, id) index below leads with it
        related_name="+",
        help_text="Owner: the user who submitted it; empty for system tasks, "
        "which only operators see.",
    )
    schedule = models.ForeignKey(
        "tasks_app.Schedule",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        db_constraint=False,
        db_index=False,  # the (schedule, id) index below leads with it
        related_name="runs",
        help_text="The recurring schedule that submitted it, if one did.",
    )
    status = models.CharField(
        max_length=16,
        choices=TaskStatus.choices,
        default=TaskStatus.PENDING,
        help_text="Where the task is in its life cycle.",
    )
    attempts = models.PositiveIntegerField(
        default=0, help_text="Handler runs started so far."
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="Accepted at.")
    published_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    partition = models.IntegerField(null=True, blank=True, help_text="Kafka partition.")
    offset = models.BigIntegerField(null=True, blank=True, help_text="Kafka offset.")
    worker = models.CharField(
        max_length=255, blank=True, default="", help_text="Member that ran it last."
    )
    result = models.JSONField(null=True, blank=True, help_text="Handler's return.")
    error = models.TextField(blank=True, default="", help_text="Last failure.")
    # Computed by PostgreSQL from `status`: true for the statuses few tasks are
    # in. Its partial indexes serve "the dead tasks" and "topic X's failed
    # tasks" at any table size, and since the common transitions (pending ->
    # published -> running -> succeeded) leave it false, they stay HOT updates.
    exceptional = models.GeneratedField(
        expression=models.ExpressionWrapper(
            models.Q(status__in=EXCEPTIONAL_STATUSES),
            output_field=models.BooleanField(),
        ),
        output_field=models.BooleanField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["-id"]
        # No B-tree covers `status` or a timing, so with the table's free space
        # per page (fillfactor, migration 0002) every status change is a HOT
        # update that writes no index entries: the publisher's bulk update is its
        # largest cost (docs/benchmarks.md). Status filters walk the id index.
        indexes = [
            # Time-window reads (the dashboard's throughput and latency). BRIN is
            # a "summarizing" index: since PostgreSQL 16, setting finished_at
            # keeps the update HOT. Rows finish roughly in the order they were
            # stored, so a window reads the few page ranges that finished in it.
            BrinIndex(
                fields=["finished_at"],
                name="task_finished_brin",
                autosummarize=True,
                pages_per_range=BRIN_PAGES_PER_RANGE,
            ),
            models.Index(fields=["topic", "id"], name="task_topic_id"),
            models.Index(fields=["key", "id"], name="task_key_id"),
            # A submitter's own tasks, newest first (their task list).
            models.Index(fields=["submitted_by", "id"], name="task_owner_id"),
            # The few failed, dead and cancelled tasks, overall and per topic.
            models.Index(
                fields=["id"],
                condition=models.Q(exceptional=True),
                name="task_exceptional_id",
            ),
            models.Index(
                fields=["topic", "id"],
                condition=models.Q(exceptional=True),
                name="task_exceptional_topic_id",
            ),
            # A schedule's runs, newest first. Only runs have an entry: a task
            # from the API would write a NULL one that no read looks up.
            models.Index(
                fields=["schedule", "id"],
                condition=models.Q(schedule__isnull=False),
                name="task_schedule_runs",
            ),
        ]
        constraints = [
            # System tasks (no owner) share one key space: NULLS NOT DISTINCT.
            models.UniqueConstraint(
                fields=["submitted_by", "idempotency_key"],
                name="task_idempotency_key_per_user",
                condition=models.Q(idempotency_key__isnull=False),
                nulls_distinct=False,
            ),
            # One run per schedule and tick, whoever owns the schedule.
            models.UniqueConstraint(
                fields=["schedule", "idempotency_key"],
                name="task_one_run_per_tick",
                condition=models.Q(schedule__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.topic_id}:{self.uuid}"

    @classmethod
    def from_db(
        cls, db: str | None, field_names: Collection[str], values: Collection[Any]
    ) -> "Task":
        """Build a task loaded with all its columns as `from_columns` does."""
        if len(values) != len(_COLUMNS) or _init_listened():
            return super().from_db(db, field_names, values)
        return cls._built(zip(_COLUMNS, values, strict=False), db=db)  # same length

    @classmethod
    def from_columns(cls, columns: dict[str, Any], *, db: str | None = None) -> "Task":
        """Build a task from column values by attribute name; `db` None: a new one.

        Django's constructor loops over every field and sends two signals: 15.6
        us a task, the largest part of storing a POST of 1,000 in the web
        process and a large part of loading a batch in a worker; setting the
        attributes at once takes a few (docs/benchmarks.md). While any
        `pre_init` or `post_init` receiver is connected, the constructor runs,
        so receivers see every task.
        """
        if not _init_listened():
            return cls._built(columns.items(), db=db)
        # django-stubs takes a starred list for the first column alone.
        task = cls(*[columns.get(n, models.DEFERRED) for n in _COLUMNS])  # type: ignore[misc]
        task._state.adding = db is None
        task._state.db = db
        return task

    @classmethod
    def _built(cls, columns: Iterable[tuple[str, Any]], *, db: str | None) -> "Task":
        task = cls.__new__(cls)
        task.__dict__.update(columns)
        task._state = state = ModelState()
        state.adding = db is None
        state.db = db
        return task


def _init_listened() -> bool:
    """Tell whether any receiver listens for models being built."""
    return bool(pre_init.receivers or post_init.receivers)


# Every column's attribute name, in the order Django reads them.
_COLUMNS = tuple(field.attname for field in Task._meta.concrete_fields)


class TaskEvent(models.Model):
    """One recorded transition of a task: when, to what, by whom, which attempt."""

    # No database constraint: an event is written in the statement or the
    # transaction that writes its task, and deleting a task deletes its events
    # (the ORM's cascade; the purge deletes them itself). PostgreSQL checked
    # each event row again at commit, through SPI: with the outbox's check,
    # over a fifth of its CPU in the end-to-end run (docs/benchmarks.md).
    task = models.ForeignKey(
        Task, on_delete=models.CASCADE, related_name="events", db_constraint=False
    )
    status = models.CharField(max_length=16, choices=TaskStatus.choices)
    at = models.DateTimeField(help_text="When the transition happened.")
    worker = models.CharField(max_length=255, blank=True, default="")
    attempt = models.PositiveIntegerField(default=0)
    detail = models.TextField(blank=True, default="", help_text="Error or reason.")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.task_id} -> {self.status}"


class OutboxEntry(models.Model):
    """A task waiting to be produced to Kafka.

    Narrow on purpose: the publisher removes entries with one
    `DELETE ... RETURNING`, which moves far more rows per second than updating
    the wide task rows it would otherwise have to select and lock.
    """

    # No database constraint, as TaskEvent.task: written with its task.
    task = models.OneToOneField(
        Task, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    topic_name = models.CharField(max_length=249)
    key = models.CharField(max_length=255)
    envelope = models.TextField(help_text="The JSON envelope produced to Kafka.")
    available_at = models.DateTimeField(help_text="Not produced before this time.")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["available_at"], name="outbox_available")]

    def __str__(self) -> str:
        return f"outbox {self.id} -> {self.topic_name}"


class DeadLetter(models.Model):
    """A dead task's envelope waiting to be produced to its topic's `.dlq`.

    Written in the same fenced transaction that records the task `dead`, and
    produced by the publisher afterwards: no Kafka call happens while a lane's
    row is locked, and a dead letter survives a Kafka outage.
    """

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="+")
    topic = models.ForeignKey(
        Topic, on_delete=models.CASCADE, related_name="+", help_text="Source topic."
    )
    key = models.CharField(max_length=255)
    envelope = models.TextField(help_text="The envelope the task was consumed with.")
    error = models.TextField(help_text="Why the task died (first 1,000 characters).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"dead letter {self.id} of task {self.task_id}"


class TaskCount(models.Model):
    """How many tasks of a topic are in a status: the stats read these few rows
    instead of counting every task.

    PostgreSQL keeps them, not the application: statement triggers on the task
    table (migration 0012) add each statement's changes to the row of the
    connection that made them (`shard` = its backend pid), so concurrent
    writers never wait on each other's counts. The purge folds the rows into
    shard 0 (services/retention.py). A topic's count is the sum over shards.
    """

    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=TaskStatus.choices)
    shard = models.IntegerField(help_text="Backend pid of the writer; 0 once folded.")
    count = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["topic", "status", "shard"], name="taskcount_topic_status_shard"
            )
        ]

    def __str__(self) -> str:
        return f"{self.topic_id} {self.status}: {self.count}"
