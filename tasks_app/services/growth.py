"""Growing a topic's partitions without breaking any key's order.

A key maps to `crc32(key) % partitions`, so more partitions move keys: a key's
later tasks may land on another partition than its older ones, and two lanes
would run them side by side. Growth therefore records a barrier: where each
old partition's log ended at that moment. A message published after it (in an
old partition from its barrier on; in a new partition, all of them) waits until
every old partition's lane has passed its barrier, i.e. until every task
published before the growth has finished. Lanes read only up to their
*runnable end*, the recorded end of their log or their barrier.
"""

from collections.abc import Iterable

from confluent_kafka import KafkaException
from django.conf import settings
from django.db import connection

from rotation.kafka.admin import grow_partitions, topic_ids
from tasks_app.errors import Conflict, ServiceUnavailable
from tasks_app.models import PartitionHead, Topic
from tasks_app.services.publisher_lock import publisher_lock
from tasks_app.services.sql import sql

# How long a growth waits for a publisher run to finish its batches.
GROWTH_WAIT_S = 15.0

# True once every old partition's lane has passed its barrier. {group} is an SQL
# expression naming the consumer group; `t` is the topic's row.
_BARRIER_PASSED_SQL = """NOT EXISTS (
    SELECT 1 FROM jsonb_each_text(t.growth_barrier) AS b(p, o)
      LEFT JOIN {lanestate} s
        ON s.group_id = {group} AND s.topic_id = t.id AND s.partition = b.p::int
     WHERE COALESCE(s.next_offset, 0) < b.o::bigint)"""
_RUNNABLE_END_SQL = """(
SELECT CASE WHEN t.growth_barrier IS NULL OR {passed}
            THEN COALESCE(h.end_offset, 0)
            ELSE LEAST(COALESCE(h.end_offset, 0),
                       COALESCE((t.growth_barrier ->> ({partition})::text)::bigint, 0))
       END
  FROM {topic} t
  LEFT JOIN {partitionhead} h ON h.topic_id = t.id AND h.partition = {partition}
 WHERE t.id = {topic_pk})"""
_PASSED_SQL = sql(
    """
SELECT {passed}
  FROM {topic} t JOIN {grouptopic} gt ON gt.topic_id = t.id
 WHERE t.id = %s
""",
    passed=sql(_BARRIER_PASSED_SQL, group="gt.consumergroup_id"),
)


def runnable_end_sql(*, group: str, topic: str, partition: str) -> str:
    """Spell, as a scalar subquery, how far a lane may read; the lane is named by
    SQL expressions for its group's and topic's ids and its partition."""
    passed = sql(_BARRIER_PASSED_SQL, group=group)
    return sql(_RUNNABLE_END_SQL, passed=passed, partition=partition, topic_pk=topic)


def growth_barrier_passed(*, topic: Topic) -> bool:
    """Tell whether every old partition's lane has passed the topic's barrier."""
    with connection.cursor() as cursor:
        cursor.execute(_PASSED_SQL, [topic.pk])
        row = cursor.fetchone()
    return row is None or bool(row[0])


def partitions_grow(*, topic: Topic, old: Topic) -> None:
    """Save `topic`, whose partitions grow from `old`'s, keeping every key's order.

    Kafka gets the partitions first: the publisher places messages by the count
    PostgreSQL records, which must exist in Kafka. Then, with the publisher's
    lock held (no batch in flight under the old count), the new count is saved
    with the barrier. One growth at a time: the next waits for the last barrier.
    """
    if old.growth_barrier and growth_barriers_clear(topics=[old]) == 0:
        raise Conflict(
            f"Topic {topic.name} is still settling its last partition growth: "
            "tasks published before it are still running. Grow it again once "
            "they finished (its lag in /api/stats/ is 0).",
            field="partitions",
        )
    failures = grow_partitions(
        settings.KAFKA_BOOTSTRAP_SERVERS, {topic.name: topic.partitions}
    )
    if failures:
        _growth_refused(topic=topic, kept=old.partitions, reason=failures[topic.name])
    with publisher_lock(wait_s=GROWTH_WAIT_S) as held:
        if not held:
            raise ServiceUnavailable(
                f"The publisher is busy; retry growing {topic.name} in a moment.",
                field="partitions",
                service="publisher",
            )
        ends = dict(
            PartitionHead.objects.filter(topic=topic).values_list(
                "partition", "end_offset"
            )
        )
        topic.growth_barrier = {
            str(partition): ends.get(partition, 0)
            for partition in range(old.partitions)
        }
        topic.save()


def _growth_refused(*, topic: Topic, kept: int, reason: str) -> None:
    """Raise the answer to a growth Kafka did not make: 503 when the broker is
    unreachable (retry later), 409 when it answered no (it never will)."""
    message = f"Kafka did not add partitions to {topic.name}, so it keeps {kept}"
    try:
        topic_ids(settings.KAFKA_BOOTSTRAP_SERVERS, [topic.name])
    except KafkaException as exc:
        raise ServiceUnavailable(
            f"{message}: {reason}", field="partitions", service="kafka"
        ) from exc
    raise Conflict(f"{message}: {reason}", field="partitions")


def growth_barriers_clear(*, topics: Iterable[Topic] | None = None) -> int:
    """Drop the growth barriers every old partition has passed; return how many.

    Lanes read past a barrier only once it is passed as a whole, so clearing it
    is tidying up (and lets the topic grow again).
    """
    barriers = Topic.objects.filter(growth_barrier__isnull=False)
    if topics is not None:
        barriers = barriers.filter(pk__in=[t.pk for t in topics])
    passed = [t.pk for t in barriers if growth_barrier_passed(topic=t)]
    return Topic.objects.filter(pk__in=passed).update(growth_barrier=None)
