"""Move due tasks from the outbox to Kafka in order, one active publisher at a time.

Each batch is one transaction: take the oldest due outbox entries (DELETE ...
RETURNING, in id order), produce them, wait for every delivery report, then mark
the tasks published with their partition and offset. A failed delivery rolls the
transaction back, so the entries return to the outbox and the next run sends them
again: delivery to Kafka is at-least-once, and the envelope's task id lets the
consumer skip a task that already finished.
"""

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models.functions import Now

from rotation.producer import (
    BatchProducer,
    Delivery,
    Headers,
    OutgoingMessage,
    ProduceError,
    shared_producer,
)
from tasks_app.models import OutboxEntry, Topic
from tasks_app.services.lanes import lanes_kick, partition_heads_advance
from tasks_app.services.publish_nudge import publish_nudge_clear
from tasks_app.services.topics import topic_sync_kafka

logger = logging.getLogger(__name__)

# Key of the session advisory lock held by the one active publisher.
PUBLISHER_LOCK_KEY = 0x5C4ED_0B0C
# A run that finds the lock taken keeps trying this long: the holder may be just
# finishing and would then miss the task whose nudge queued this run.
LOCK_WAIT_S = 0.1
LOCK_RETRY_S = 0.005
# During a long run, start idle lanes of newly published topics this often.
KICK_INTERVAL_S = 0.1
CONTENT_TYPE = b"application/json"
# The seed's line for a delivered message, kept for operators' log searches.
SEED_DELIVERY_LOG = "Future completed. Result: Ok((%d, %d)) topic=%s"

# Plain FOR UPDATE, not SKIP LOCKED: an entry a cancel holds must not be
# overtaken by later entries of its topic, so the publisher waits for the cancel.
# `id = ANY(ARRAY(...))` here and below pins both statements to primary-key
# lookups: with a join, a table without fresh statistics got a plan that scanned
# every pending task once per batch (45 ms instead of 11 ms for 500 rows).
TAKE_SQL = """
WITH taken AS (
    DELETE FROM tasks_app_outboxentry
    WHERE id = ANY(ARRAY(
        SELECT id FROM tasks_app_outboxentry
        WHERE available_at <= statement_timestamp()
          AND topic_name <> ALL(%s::text[])
        ORDER BY id
        LIMIT %s
        FOR UPDATE
    ))
    RETURNING id, task_id, topic_name, key, envelope
)
SELECT taken.id, taken.task_id,
       (SELECT uuid::text FROM tasks_app_task task WHERE task.id = taken.task_id),
       taken.topic_name, taken.key, taken.envelope
FROM taken
ORDER BY taken.id
"""

RECORD_SQL = """
WITH delivered AS (
    SELECT * FROM unnest(%s::bigint[], %s::int[], %s::bigint[]) AS d(id, p, o)
), updated AS (
    UPDATE tasks_app_task task
    SET status = 'published', "partition" = d.p, "offset" = d.o,
        published_at = statement_timestamp()
    FROM delivered d
    WHERE task.id = ANY(ARRAY(SELECT id FROM delivered)) AND task.id = d.id
      AND task.status = 'pending'
    RETURNING task.id, task.attempts
)
INSERT INTO tasks_app_taskevent (task_id, status, at, worker, attempt, detail)
SELECT id, 'published', statement_timestamp(), '', attempts, '' FROM updated
"""

# Topics this process has confirmed in Kafka (with their partition count): the
# broker would otherwise auto-create an unknown topic with its own defaults.
_ready_topics: set[str] = set()


class OutboxRow(NamedTuple):
    """One taken outbox entry, with its task's public id."""

    id: int
    task_id: int
    task_uuid: str
    topic: str
    key: str
    envelope: str


class TopicsNotReady(Exception):
    """A batch holds topics not yet confirmed in Kafka; it was rolled back."""

    def __init__(self, names: set[str]) -> None:
        super().__init__(", ".join(sorted(names)))
        self.names = names


def publish_pending_run() -> int:
    """Publish due tasks until none is left or the time budget is spent.

    Return how many were published. Only one run is active at a time (a
    PostgreSQL advisory lock); a concurrent run returns 0 at once.
    """
    _nudge_clear()
    try:
        with _publisher_lock() as held:
            return _publish_until_done() if held else 0
    except (OperationalError, InterfaceError) as exc:
        logger.error(
            "The publisher could not use PostgreSQL (%s); due tasks stay pending "
            "and the next run (within SCHEDULER_PUBLISH_INTERVAL) tries again.",
            exc,
        )
        return 0


def _nudge_clear() -> None:
    """Let the next commit queue a new run; beat covers for a Redis outage."""
    try:
        publish_nudge_clear()
    except redis.RedisError as exc:
        logger.warning("Could not clear the publisher nudge in Redis: %s", exc)


@contextmanager
def _publisher_lock() -> Iterator[bool]:
    """Hold the publisher's session advisory lock for the block, if it is free."""
    deadline = time.monotonic() + LOCK_WAIT_S
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [PUBLISHER_LOCK_KEY])
            held = bool(cursor.fetchone()[0])
            if held or time.monotonic() >= deadline:
                break
            time.sleep(LOCK_RETRY_S)
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [PUBLISHER_LOCK_KEY])


class _Progress:
    """What a run has published, and the topics whose idle lanes still need a start.

    Lanes are kicked after the first batch and then at most every KICK_INTERVAL_S
    (and at the end of the run): asking the scheduler after every batch cost
    about a fifth of a batch's time, and a running lane needs no kick.
    """

    def __init__(self) -> None:
        self.published = 0
        self.unkicked: set[str] = set()
        self.kicked_at = -KICK_INTERVAL_S

    def add(self, deliveries: list[Delivery]) -> None:
        self.published += len(deliveries)
        self.unkicked.update(d.topic for d in deliveries)
        if time.monotonic() - self.kicked_at >= KICK_INTERVAL_S:
            self.kick()

    def kick(self) -> None:
        if self.unkicked:
            lanes_kick(topics=sorted(self.unkicked))
            self.unkicked.clear()
            self.kicked_at = time.monotonic()


def _publish_until_done() -> int:
    """Publish batches until nothing is due, a batch fails or the budget is spent."""
    if not _due_count():
        return 0
    producer = shared_producer(settings.KAFKA_BOOTSTRAP_SERVERS)
    progress = _Progress()
    try:
        producer.probe()
        _publish_batches(producer, progress)
    except ProduceError as exc:
        logger.error(
            "%s; %d tasks stay pending and will be published when it answers.",
            exc,
            _due_count(),
        )
    progress.kick()
    return progress.published


def _publish_batches(producer: BatchProducer, progress: _Progress) -> None:
    """Publish batch after batch until none is due or the time budget is spent."""
    deadline = time.monotonic() + settings.SCHEDULER_PUBLISH_BUDGET_S
    blocked: set[str] = set()
    while time.monotonic() < deadline:
        try:
            deliveries = publish_batch(producer=producer, blocked=blocked)
        except TopicsNotReady as exc:
            blocked |= _topics_prepare(names=exc.names)
            continue
        if not deliveries:
            return
        progress.add(deliveries)


def _due_count() -> int:
    """Count outbox entries whose time has come (by the database's clock)."""
    return OutboxEntry.objects.filter(available_at__lte=Now()).count()


def publish_batch(
    *,
    producer: BatchProducer,
    blocked: Iterable[str] = (),
    limit: int | None = None,
) -> list[Delivery]:
    """Publish the oldest due entries (except `blocked` topics) in one transaction.

    Return where Kafka stored each (empty when nothing is due); raise
    ProduceError (nothing recorded, the entries stay in the outbox) or
    TopicsNotReady (nothing taken).
    """
    limit = limit or settings.SCHEDULER_PUBLISH_BATCH
    with transaction.atomic():
        rows = _take(limit=limit, blocked=blocked)
        if not rows:
            return []
        unready = {row.topic for row in rows} - _ready_topics
        if unready:
            raise TopicsNotReady(unready)
        deliveries = producer.produce_batch([_message(row) for row in rows])
        _record(rows=rows, deliveries=deliveries)
    _log_deliveries(deliveries)
    return deliveries


def _take(*, limit: int, blocked: Iterable[str]) -> list[OutboxRow]:
    """Remove the oldest due entries from the outbox and return them in id order."""
    with connection.cursor() as cursor:
        cursor.execute(TAKE_SQL, [list(blocked), limit])
        return [OutboxRow(*row) for row in cursor.fetchall()]


def _message(row: OutboxRow) -> OutgoingMessage:
    """Build the Kafka record: the stored envelope, keyed, with id headers."""
    headers: Headers = [("task_id", row.task_uuid), ("content-type", CONTENT_TYPE)]
    return OutgoingMessage(row.topic, row.key, row.envelope, headers)


def _record(*, rows: list[OutboxRow], deliveries: list[Delivery]) -> None:
    """Mark the tasks published with where Kafka stored them, log the events, and
    move each partition's recorded end (one entry per partition suffices)."""
    with connection.cursor() as cursor:
        cursor.execute(
            RECORD_SQL,
            [
                _pg_array(row.task_id for row in rows),
                _pg_array(d.partition for d in deliveries),
                _pg_array(d.offset for d in deliveries),
            ],
        )
    ends: dict[tuple[str, int], int] = {}
    for d in deliveries:
        ends[d.topic, d.partition] = max(d.offset, ends.get((d.topic, d.partition), -1))
    partition_heads_advance(deliveries=[(t, p, o) for (t, p), o in ends.items()])


def _pg_array(values: Iterable[int]) -> str:
    """Spell integers as a PostgreSQL array literal: far cheaper than adapting a
    Python list element by element, which dominated the batch's client time."""
    return "{" + ",".join(map(str, values)) + "}"


def _log_deliveries(deliveries: list[Delivery]) -> None:
    """Log each delivered record at debug level, in the seed's words."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    for d in deliveries:
        logger.debug(SEED_DELIVERY_LOG, d.partition, d.offset, d.topic)


def _topics_prepare(*, names: set[str]) -> set[str]:
    """Create the topics in Kafka (retrying earlier failures); return the failures."""
    failures = topic_sync_kafka(topics=Topic.objects.filter(name__in=names))
    _ready_topics.update(names - failures.keys())
    for name, reason in failures.items():
        logger.error(
            "Tasks of topic %s stay pending: its Kafka topic could not be created "
            "(%s). The publisher retries at its next run.",
            name,
            reason,
        )
    return set(failures)
