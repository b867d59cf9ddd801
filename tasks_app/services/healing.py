"""Publish a lane's unfinished tasks again when Kafka lost them.

PostgreSQL is the source of truth; Kafka may lose messages (a memory broker
restarted, a topic re-created, retention, an unclean leader election). A lane
whose partition is flagged lost is healed by its holder, under its lease,
before it runs anything:

1. the topic is created in Kafka if it is gone, and one marker record is
   produced (markers are passed over by readers): the slow part of a heal
   after an outage (a renewed idempotent producer waits ~0.5 s for its
   producer id) happens before the publisher's lock, which the publisher and
   every other healing lane wait for;
2. with the publisher's lock held, so no new task lands in between, every
   unfinished task of the partition is produced again in id (submission)
   order, into the same partition, after a marker record that shows where the
   new log starts;
3. in one fenced transaction the tasks get their new offsets and the lane its
   new resume point (the first re-published task), and the partition's end is
   set to the new log's end.

Copies left in the log from before are stale (their tasks' offsets point at the
new copies) and are skipped; finished tasks are not published again, and no
task is running while its lane's holder heals it, so nothing runs twice.
"""

import logging

from rotation.kafka.producer import BatchProducer, OutgoingMessage
from rotation.store import HealPostponed, LaneClaim
from tasks_app.models import LaneState, PartitionHead, Task, TaskStatus, Topic
from tasks_app.services.envelope import marker_record, task_envelope, task_record
from tasks_app.services.lane_state import LaneRef, lane_fenced, lane_read, lane_resume
from tasks_app.services.partition_heads import partition_healed
from tasks_app.services.publisher_lock import publisher_lock
from tasks_app.services.rotation_events import RotationEvent, rotation_event_count
from tasks_app.services.sql import sql
from tasks_app.services.topics import topic_sync_kafka

logger = logging.getLogger(__name__)

# How long a healing lane waits for a publisher run to finish its batch.
PUBLISHER_WAIT_S = 5.0
UNFINISHED = (TaskStatus.PUBLISHED, TaskStatus.RUNNING, TaskStatus.FAILED)

_OFFSETS_SQL = sql(
    """
UPDATE {task} t SET "offset" = d.o
  FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, o)
 WHERE t.id = d.id
"""
)


def lane_heal(*, ref: LaneRef, token: int, producer: BatchProducer) -> LaneClaim:
    """Heal the lane (see the module docstring); return its claim afterwards.

    Raise HealPostponed when the publisher holds its lock for too long, and
    ProduceError when Kafka does not take the tasks: the lane stays flagged and
    its next turn tries again.
    """
    if _head(ref).lost:
        _prepare(ref, producer)
    with publisher_lock(wait_s=PUBLISHER_WAIT_S) as held:
        if not held:
            raise HealPostponed(
                f"Lane {ref.lane}: the publisher kept its lock for "
                f"{PUBLISHER_WAIT_S} s; the lane heals on its next turn"
            )
        head = _head(ref)
        if head.lost:
            _republish(ref, token, producer, head.lost_reason)
    return lane_read(ref=ref)


def _head(ref: LaneRef) -> PartitionHead:
    return PartitionHead.objects.get(
        topic_id=ref.topic_pk, partition=ref.lane.partition
    )


def _prepare(ref: LaneRef, producer: BatchProducer) -> None:
    """Create the topic in Kafka if it is gone and produce one marker record,
    outside the publisher's lock (see the module docstring, step 1)."""
    lane, topic = ref.lane, Topic.objects.get(pk=ref.topic_pk)
    failures = topic_sync_kafka(topics=[topic])
    if topic.name in failures:
        raise HealPostponed(f"Lane {lane}: {failures[topic.name]}")
    producer.produce_batch([marker_record(topic=lane.topic, partition=lane.partition)])


def _republish(ref: LaneRef, token: int, producer: BatchProducer, reason: str) -> None:
    """Produce the marker and the unfinished tasks; record where they went."""
    lane, topic = ref.lane, Topic.objects.get(pk=ref.topic_pk)
    tasks = list(
        Task.objects.filter(
            topic_id=ref.topic_pk, partition=lane.partition, status__in=UNFINISHED
        ).order_by("id")
    )
    deliveries = producer.produce_batch(
        [marker_record(topic=lane.topic, partition=lane.partition)]
        + [_record(task, topic, lane.partition) for task in tasks]
    )
    start, end = deliveries[0].offset + 1, deliveries[-1].offset + 1
    with lane_fenced(ref=ref, token=token) as cursor:
        state = LaneState.objects.get(
            group_id=ref.group_pk, topic_id=ref.topic_pk, partition=lane.partition
        )
        careful = max(0, state.careful_until - state.next_offset)
        offsets = [d.offset for d in deliveries[1:]]
        cursor.execute(_OFFSETS_SQL, [[task.pk for task in tasks], offsets])
        lane_resume(cursor, ref=ref, next_offset=start, careful_until=start + careful)
        partition_healed(
            cursor, topic_pk=ref.topic_pk, partition=lane.partition, end_offset=end
        )
    rotation_event_count(event=RotationEvent.HEALED, group=lane.group, topic=lane.topic)
    logger.warning(
        "Lane %s healed: re-published %d unfinished tasks at offsets %d-%d, in "
        "submission order (%s)",
        lane,
        len(tasks),
        start,
        end - 1,
        reason or "Kafka lost its messages",
    )


def _record(task: Task, topic: Topic, partition: int) -> OutgoingMessage:
    return task_record(
        topic=topic.name,
        key=task.key,
        envelope=task_envelope(task=task, topic_name=topic.name),
        task_uuid=str(task.uuid),
        partition=partition,
    )
