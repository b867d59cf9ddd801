"""A slice never skips messages the publisher has produced but not yet recorded.

The publisher produces a batch, then commits the batch's offsets and the
partition's new end in one transaction. A lane that reads in between sees
messages whose tasks carry no offset yet; they must wait, not be passed over.
"""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from tasks_app.models import LaneState, OutboxEntry, Task, TaskStatus
from tasks_app.services.envelope import task_envelope, task_record
from tasks_app.services.partition_heads import partition_heads_advance
from tasks_app.services.tasks import TaskSpec, task_submit
from tasks_app.services.topics import topic_set_paused
from tasks_app.worker import runtime
from tests.cluster import settle, wait_for
from tests.publishing_helpers import producer_for
from tests.rotation_support import make_topic, submit, wait_all_finished

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _settled(worker):
    """Let the worker leave its slice before the tables are emptied."""
    yield
    settle(worker)


def _produce_unrecorded(topic: str, tasks: list[Task]) -> list[int]:
    """Produce the tasks' envelopes as an in-flight publisher batch would."""
    deliveries = producer_for(settings.KAFKA_BOOTSTRAP_SERVERS).produce_batch(
        [
            task_record(
                topic=topic,
                key=task.key,
                envelope=task_envelope(task=task, topic_name=topic),
                task_uuid=str(task.uuid),
                partition=0,
            )
            for task in tasks
        ]
    )
    return [d.offset for d in deliveries]


def _record_published(topic: str, tasks: list[Task], offsets: list[int]) -> None:
    """Commit the in-flight batch as the publisher would, then start the lane."""
    for task, offset in zip(tasks, offsets, strict=True):
        Task.objects.filter(pk=task.pk).update(
            status=TaskStatus.PUBLISHED, partition=0, offset=offset
        )
    OutboxEntry.objects.filter(task__in=tasks).delete()
    partition_heads_advance(spans=[(topic, 0, min(offsets), max(offsets))])
    runtime().kick_lanes([topic])


def test_messages_past_the_recorded_end_run_once_the_publisher_records_them(
    worker, topic_name
):
    topic = make_topic(topic_name, slice_ms=500)
    topic_set_paused(topic=topic, paused=True)
    submit(topic_name, [{"n": n} for n in range(10)])
    wait_for(
        lambda: (
            Task.objects.filter(topic=topic, status=TaskStatus.PUBLISHED).count() == 10
        ),
        timeout_s=30,
        what="the first tasks to be published",
    )
    later = timezone.now() + timedelta(hours=1)  # keeps the real publisher away
    in_flight = [
        task_submit(
            submitted_by=None,
            spec=TaskSpec(topic=topic_name, message={"n": n}, run_at=later),
        )
        for n in range(10, 15)
    ]
    offsets = _produce_unrecorded(topic_name, in_flight)
    assert offsets == list(range(10, 15))

    topic_set_paused(topic=topic, paused=False)
    wait_all_finished(topic_name, 10)
    assert LaneState.objects.get(topic=topic).next_offset == 10
    _record_published(topic_name, in_flight, offsets)
    wait_all_finished(topic_name, 15, timeout_s=30)
