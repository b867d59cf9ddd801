"""Partition heads: where each partition's log ends, and whether Kafka lost it.

The publisher writes a head in the transaction that records a batch's offsets;
lanes read only up to it (a message past it may belong to a batch not recorded
yet). The head also carries the `lost` flag: set when Kafka is found to have
lost messages PostgreSQL still holds, cleared when the lane has healed.
"""

import logging
from collections.abc import Sequence

from django.db import connection
from django.db.backends.utils import CursorWrapper

from tasks_app.models import PartitionHead, Topic
from tasks_app.services.sql import columns, sql

logger = logging.getLogger(__name__)

# Offsets only grow in a Kafka partition, so a batch that starts below the
# recorded end went into a log that was reset (a broker restarted without its
# data, a topic created again): the partition is flagged lost and its end
# restarts at the new log's. The flag commits with the new tasks' offsets, so a
# lane that sees those sees it too.
_ADVANCE_SQL = sql(
    """
UPDATE {partitionhead} h
   SET lost = h.lost OR d.reset,
       lost_reason = CASE WHEN d.reset AND NOT h.lost THEN d.reason
                          ELSE h.lost_reason END,
       end_offset = CASE WHEN d.reset THEN d.last + 1
                         ELSE GREATEST(h.end_offset, d.last + 1) END
  FROM (SELECT old.topic_id, x.p, x.last, x.first < old.end_offset AS reset,
               old.lost AS was_lost, t.name,
               format('Kafka placed new messages from offset %%s, below the '
                      'recorded end %%s: the log was reset (a broker restarted '
                      'without its data, or the topic was created again)',
                      x.first, old.end_offset) AS reason
          FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::bigint[])
               AS x(topic, p, first, last)
          JOIN {topic} t ON t.name = x.topic
          JOIN {partitionhead} old
            ON old.topic_id = t.id AND old.partition = x.p) AS d
 WHERE h.topic_id = d.topic_id AND h.partition = d.p
RETURNING d.name, d.p, d.reset AND NOT d.was_lost, d.reason
"""
)
_INSERT_SQL = sql(
    """
INSERT INTO {partitionhead} (topic_id, partition, end_offset, lost, lost_reason)
SELECT t.id, x.p, x.last + 1, false, ''
  FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::bigint[])
       AS x(topic, p, first, last)
  JOIN {topic} t ON t.name = x.topic
ON CONFLICT (topic_id, partition) DO NOTHING
"""
)
# The partition's lost flag as an expression over %(topic)s and %(partition)s,
# to read it in the same statement (the same snapshot) as other rows.
LOST_FLAG_SQL = sql(
    """EXISTS (SELECT 1 FROM {partitionhead} h
         WHERE h.topic_id = %(topic)s AND h.partition = %(partition)s AND h.lost)"""
)
_HEALED_SQL = sql(
    """
UPDATE {partitionhead} SET end_offset = %s, lost = false, lost_reason = ''
 WHERE topic_id = %s AND partition = %s
"""
)


def partition_heads_advance(*, spans: Sequence[tuple[str, int, int, int]]) -> None:
    """Record where each partition's log now ends, from the (topic, partition,
    first offset, last offset) spans of a published batch; call in the
    publisher's transaction. A log found reset is flagged lost."""
    if not spans:
        return
    arrays = columns(spans)
    with connection.cursor() as cursor:
        cursor.execute(_ADVANCE_SQL, arrays)
        flagged = [row for row in cursor.fetchall() if row[2]]
        cursor.execute(_INSERT_SQL, arrays)
    for topic, partition, _, reason in flagged:
        logger.warning("Partition %s/%d lost in Kafka: %s", topic, partition, reason)


def partition_lost(*, topic_pk: int, partition: int, reason: str) -> None:
    """Flag a partition whose messages Kafka lost (its lane heals before running
    anything); log it once, when the flag is first set."""
    flagged = PartitionHead.objects.filter(
        topic_id=topic_pk, partition=partition, lost=False
    ).update(lost=True, lost_reason=reason)
    if flagged:
        name = Topic.objects.values_list("name", flat=True).get(pk=topic_pk)
        logger.warning("Partition %s/%d lost in Kafka: %s", name, partition, reason)


def partition_is_lost(*, topic_pk: int, partition: int) -> bool:
    """Tell whether the partition is flagged lost (its lane has not healed yet)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + LOST_FLAG_SQL, {"topic": topic_pk, "partition": partition}
        )
        return cursor.fetchone()[0]


def partition_healed(
    cursor: CursorWrapper, *, topic_pk: int, partition: int, end_offset: int
) -> None:
    """Clear the flag and set the healed log's end; call in the healing lane's
    fenced transaction, with its cursor."""
    cursor.execute(_HEALED_SQL, [end_offset, topic_pk, partition])
