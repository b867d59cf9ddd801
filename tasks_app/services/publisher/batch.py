"""One publisher batch: take due outbox entries, produce them, record where they went.

A batch is one transaction: the entries are deleted from the outbox (DELETE ...
RETURNING, in id order), produced, and once every delivery report is in, the
tasks are marked published with their partition and offset. A failed delivery
rolls the transaction back, so the entries return to the outbox and a later run
sends them again: delivery to Kafka is at-least-once, and the envelope's task id
lets the consumer skip a task that already finished.
"""

import logging
from collections.abc import Iterable
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction

from rotation.kafka.producer import (
    BatchProducer,
    Delivery,
    OutgoingMessage,
    key_partition,
)
from tasks_app.models import Topic
from tasks_app.services.envelope import task_record
from tasks_app.services.partition_heads import partition_heads_advance
from tasks_app.services.publisher.topics_ready import topics_check_ready
from tasks_app.services.sql import array_literal, sql

logger = logging.getLogger(__name__)

# The seed's line for a delivered message, kept for operators' log searches.
SEED_DELIVERY_LOG = "Future completed. Result: Ok((%d, %d)) topic=%s"

# `id = ANY(ARRAY(...))` here and below pins both statements to primary-key
# lookups: with a join, a table without fresh statistics got a plan that scanned
# every pending task once per batch (45 ms instead of 11 ms for 500 rows).
TAKE_SQL = """
WITH taken AS (
    DELETE FROM {outbox}
    WHERE id = ANY(ARRAY(
        SELECT id FROM {outbox}
        WHERE available_at <= statement_timestamp()
          AND topic_name <> ALL(%s::text[])
        ORDER BY id
        LIMIT %s
        FOR UPDATE {skip}
    ))
    RETURNING id, task_id, topic_name, key, envelope
)
SELECT taken.id, taken.task_id,
       (SELECT uuid::text FROM {task} task WHERE task.id = taken.task_id),
       taken.topic_name, taken.key, taken.envelope
FROM taken
ORDER BY taken.id
"""
# A lone batch waits for entries another transaction holds (a cancel, say), so
# no entry is overtaken by later ones of its topic. Overlapped batches skip the
# entries the batch before them holds; see pipeline.py.
TAKE_WAITING_SQL = sql(TAKE_SQL, skip="")
TAKE_SKIPPING_SQL = sql(TAKE_SQL, skip="SKIP LOCKED")

RECORD_SQL = sql(
    """
WITH delivered AS (
    SELECT * FROM unnest(%s::bigint[], %s::int[], %s::bigint[]) AS d(id, p, o)
), updated AS (
    UPDATE {task} task
    SET status = 'published', "partition" = d.p, "offset" = d.o,
        published_at = statement_timestamp()
    FROM delivered d
    WHERE task.id = ANY(ARRAY(SELECT id FROM delivered)) AND task.id = d.id
      AND task.status = 'pending'
    RETURNING task.id, task.attempts
)
INSERT INTO {taskevent} (task_id, status, at, worker, attempt, detail)
SELECT id, 'published', statement_timestamp(), '', attempts, '' FROM updated
"""
)


class OutboxRow(NamedTuple):
    """One taken outbox entry, with its task's public id."""

    id: int
    task_id: int
    task_uuid: str
    topic: str
    key: str
    envelope: str


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
    with transaction.atomic():
        rows = take(limit=limit, blocked=blocked, skip_locked=False)
        if not rows:
            return []
        deliveries = produce(producer=producer, rows=rows)
        record_tasks(rows=rows, deliveries=deliveries)
        record_ends(deliveries=deliveries)
    log_deliveries(deliveries)
    return deliveries


def take(
    *, limit: int | None, blocked: Iterable[str], skip_locked: bool
) -> list[OutboxRow]:
    """Remove the oldest due entries from the outbox and return them in id order."""
    statement = TAKE_SKIPPING_SQL if skip_locked else TAKE_WAITING_SQL
    with connection.cursor() as cursor:
        cursor.execute(
            statement, [list(blocked), limit or settings.SCHEDULER_PUBLISH_BATCH]
        )
        return [OutboxRow(*row) for row in cursor.fetchall()]


def produce(*, producer: BatchProducer, rows: list[OutboxRow]) -> list[Delivery]:
    """Send the rows to Kafka once their topics are confirmed there.

    Each record goes to its key's partition among the topic's partitions as
    PostgreSQL records them (read in the batch's transaction), not as the
    broker's metadata says: a topic a broker created by itself, or a partition
    count that just grew, never moves a key behind the database's back.
    """
    names = {row.topic for row in rows}
    topics_check_ready(names=names)
    counts = dict(
        Topic.objects.filter(name__in=names).values_list("name", "partitions")
    )
    return producer.produce_batch([_message(row, counts[row.topic]) for row in rows])


def _message(row: OutboxRow, partitions: int) -> OutgoingMessage:
    """Build the task's Kafka record, into its key's partition."""
    return task_record(
        topic=row.topic,
        key=row.key,
        envelope=row.envelope,
        task_uuid=row.task_uuid,
        partition=key_partition(row.key, partitions),
    )


def record_tasks(*, rows: list[OutboxRow], deliveries: list[Delivery]) -> None:
    """Mark the tasks published with where Kafka stored them, and log the events."""
    with connection.cursor() as cursor:
        cursor.execute(
            RECORD_SQL,
            [
                array_literal(row.task_id for row in rows),
                array_literal(d.partition for d in deliveries),
                array_literal(d.offset for d in deliveries),
            ],
        )


def record_ends(*, deliveries: list[Delivery]) -> None:
    """Move each partition's recorded end past the batch (one entry per partition
    suffices). Lanes read only up to it, so it must commit with the tasks."""
    spans: dict[tuple[str, int], tuple[int, int]] = {}
    for d in deliveries:
        first, last = spans.get((d.topic, d.partition), (d.offset, d.offset))
        spans[d.topic, d.partition] = (min(first, d.offset), max(last, d.offset))
    partition_heads_advance(
        spans=[(t, p, first, last) for (t, p), (first, last) in spans.items()]
    )


def log_deliveries(deliveries: list[Delivery]) -> None:
    """Log each delivered record at debug level, in the seed's words."""
    if logger.isEnabledFor(logging.DEBUG):
        for d in deliveries:
            logger.debug(SEED_DELIVERY_LOG, d.partition, d.offset, d.topic)
