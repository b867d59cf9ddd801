"""Publish a lane's unfinished tasks again when Kafka lost them.

PostgreSQL is the source of truth; Kafka may lose messages (a memory broker
restarted, a topic re-created, retention, an unclean leader election). A lane
whose partition is flagged lost is healed by its holder, under its lease,
before it runs anything:

1. with the publisher's lock held, so no new task lands in between, the topic
   is created in Kafka if it is gone, and every unfinished task of the
   partition is produced again in id (submission) order, into the same
   partition, after a marker record that shows where the new log starts;
2. in one fenced transaction the tasks get their new offsets and the lane its
   new resume point (the first re-published task), and the partition's end is
   set to the new log's end.

Copies left in the log from before are stale (their tasks' offsets point at the
new copies) and are skipped; finished tasks are not published again, and no
task is running while its lane's holder heals it, so nothing runs twice.
"""

import logging

from django.conf import settings

from rotation.lanes import Lane
from rotation.producer import OutgoingMessage, shared_producer
from rotation.store import HealPostponed, LaneClaim
from tasks_app.models import LaneState, PartitionHead, Task, TaskStatus, Topic
from tasks_app.services.lanes import lane_fenced
from tasks_app.services.publisher.batch import CONTENT_TYPE
from tasks_app.services.publisher_lock import publisher_lock
from tasks_app.services.tasks import task_envelope
from tasks_app.services.topics import topic_sync_kafka

logger = logging.getLogger(__name__)

# How long a healing lane waits for a publisher run to finish its batch.
PUBLISHER_WAIT_S = 5.0
# The header of the record that opens a healed log; consumers skip it.
MARKER_HEADER = "scheduler-marker"
UNFINISHED = (TaskStatus.PUBLISHED, TaskStatus.RUNNING, TaskStatus.FAILED)

_OFFSETS_SQL = """
UPDATE tasks_app_task t SET "offset" = d.o
  FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, o)
 WHERE t.id = d.id
"""
_RESUME_SQL = """
UPDATE tasks_app_lanestate SET next_offset = %s, careful_until = %s
 WHERE group_id = %s AND topic_id = %s AND partition = %s
"""
_HEAD_SQL = """
UPDATE tasks_app_partitionhead SET end_offset = %s, lost = false, lost_reason = ''
 WHERE topic_id = %s AND partition = %s
"""


def lane_heal(*, lane: Lane, token: int, lane_ids: tuple[int, int]) -> LaneClaim:
    """Heal the lane (see the module docstring); return its claim afterwards.

    Raise HealPostponed when the publisher holds its lock for too long, and
    ProduceError when Kafka does not take the tasks: the lane stays flagged and
    its next turn tries again.
    """
    group_pk, topic_pk = lane_ids
    with publisher_lock(wait_s=PUBLISHER_WAIT_S) as held:
        if not held:
            raise HealPostponed(
                f"Lane {lane}: the publisher kept its lock for {PUBLISHER_WAIT_S} s; "
                "the lane heals on its next turn"
            )
        head = PartitionHead.objects.get(topic_id=topic_pk, partition=lane.partition)
        topic = Topic.objects.get(pk=topic_pk)
        if head.lost:
            _republish(lane, token, lane_ids, topic, head.lost_reason)
    state = LaneState.objects.get(
        group_id=group_pk, topic_id=topic_pk, partition=lane.partition
    )
    head.refresh_from_db()
    return LaneClaim(
        state.next_offset,
        state.careful_until,
        head.end_offset,
        head.lost,
        Topic.objects.values_list("kafka_topic_id", flat=True).get(pk=topic_pk),
    )


def _republish(
    lane: Lane, token: int, lane_ids: tuple[int, int], topic: Topic, reason: str
) -> None:
    """Produce the marker and the unfinished tasks; record where they went."""
    group_pk, topic_pk = lane_ids
    failures = topic_sync_kafka(topics=[topic])
    if topic.name in failures:
        raise HealPostponed(f"Lane {lane}: {failures[topic.name]}")
    tasks = list(
        Task.objects.filter(
            topic_id=topic_pk, partition=lane.partition, status__in=UNFINISHED
        ).order_by("id")
    )
    messages = [_marker(lane)] + [_message(task, topic, lane) for task in tasks]
    producer = shared_producer(settings.KAFKA_BOOTSTRAP_SERVERS)
    deliveries = producer.produce_batch(messages)
    start = deliveries[0].offset + 1
    end = deliveries[-1].offset + 1
    with lane_fenced(
        lane=lane, group_pk=group_pk, topic_pk=topic_pk, token=token
    ) as cursor:
        state = LaneState.objects.get(
            group_id=group_pk, topic_id=topic_pk, partition=lane.partition
        )
        careful = max(0, state.careful_until - state.next_offset)
        ids = [task.pk for task in tasks]
        cursor.execute(_OFFSETS_SQL, [ids, [d.offset for d in deliveries[1:]]])
        cursor.execute(
            _RESUME_SQL,
            [start, start + careful, group_pk, topic_pk, lane.partition],
        )
        cursor.execute(_HEAD_SQL, [end, topic_pk, lane.partition])
    logger.warning(
        "Lane %s healed: re-published %d unfinished tasks at offsets %d-%d, in "
        "submission order (%s)",
        lane,
        len(tasks),
        start,
        end - 1,
        reason or "Kafka lost its messages",
    )


def _marker(lane: Lane) -> OutgoingMessage:
    """Open the healed log with a record whose offset shows where it starts."""
    return OutgoingMessage(
        topic=lane.topic,
        key="",
        value=b"",
        headers=[(MARKER_HEADER, "healed")],
        partition=lane.partition,
    )


def _message(task: Task, topic: Topic, lane: Lane) -> OutgoingMessage:
    return OutgoingMessage(
        topic=lane.topic,
        key=task.key,
        value=task_envelope(task=task, topic_name=topic.name),
        headers=[("task_id", str(task.uuid)), ("content-type", CONTENT_TYPE)],
        partition=lane.partition,
    )
