"""Order under concurrency: publishers, beat and nudges at once, failing batches."""

import random
import threading
import time
import uuid

from django.db import connection

from tasks_app.models import OutboxEntry, Task, Topic
from tasks_app.redis_client import redis_client
from tasks_app.services.publish_nudge import NUDGE_KEY
from tasks_app.services.tasks import TaskSpec, task_submit_many
from tasks_app.services.topics import topic_create
from tests.publishing_helpers import (
    assert_published_once_in_order,
    in_thread,
    publish_pending,
    run_concurrently,
)

# In one snapshot: a partition's recorded end, and how many tasks below it are
# recorded (offsets of a fresh topic are 0, 1, 2, ...: all of them must be).
RECORDED_BELOW_END_SQL = """
SELECT head.end_offset,
       (SELECT count(*) FROM tasks_app_task task
         WHERE task.topic_id = head.topic_id AND task.partition = head.partition
           AND task.offset < head.end_offset)
FROM tasks_app_partitionhead head WHERE head.topic_id = %s
"""
CONCURRENT_TASKS = 10_000
CONCURRENT_TOPICS = 4
SUBMITTERS = 4
SUBMIT_CHUNK = 100
BEAT_TICK_S = 0.05
NUDGE_POLL_S = 0.002


def _submit(topic: str, count: int, **extra) -> list[Task]:
    specs = [TaskSpec(topic=topic, message={"n": n}, **extra) for n in range(count)]
    return task_submit_many(submitted_by=None, specs=specs)


def test_two_publishers_started_at_once_keep_the_topic_in_order(
    transactional_db, topic_name, settings
):
    settings.SCHEDULER_PUBLISH_BATCH = 25
    topic_create(name=topic_name)
    for _ in range(4):
        _submit(topic_name, 500)
    start = threading.Barrier(2)

    def publish() -> int:
        start.wait()
        return publish_pending()

    counts = run_concurrently(in_thread(publish), in_thread(publish))

    assert sum(counts) == 2000
    assert_published_once_in_order(topic_name, 1)


def _submit_random(topics: list[str], seed: int) -> None:
    """Submit this submitter's share in chunks, to random topics and keys."""
    rng = random.Random(seed)
    for _ in range(CONCURRENT_TASKS // SUBMITTERS // SUBMIT_CHUNK):
        specs = [
            TaskSpec(rng.choice(topics), seed, key=f"k{rng.randrange(3)}")
            for _ in range(SUBMIT_CHUNK)
        ]
        task_submit_many(submitted_by=None, specs=specs)


def _publish_on_ticks(running: threading.Event) -> None:
    """Publish on a timer, as beat does, while `running` is set."""
    while running.is_set():
        publish_pending()
        time.sleep(BEAT_TICK_S)


def _publish_when_nudged(running: threading.Event) -> None:
    """Publish when a submission queued a nudge, as the publisher worker does."""
    while running.is_set():
        if redis_client().exists(NUDGE_KEY):
            publish_pending()
        time.sleep(NUDGE_POLL_S)


def test_tasks_submitted_while_beat_and_nudges_fire_are_published_once_in_order(
    transactional_db, settings
):
    settings.SCHEDULER_PUBLISH_BATCH = 200
    topics = [f"t-{uuid.uuid4().hex[:12]}" for _ in range(CONCURRENT_TOPICS)]
    for name in topics:
        topic_create(name=name, partitions=2)
    submitting = threading.Event()
    submitting.set()

    def submitters() -> None:
        try:
            run_concurrently(
                *(in_thread(_submit_random, topics, seed) for seed in range(SUBMITTERS))
            )
        finally:
            submitting.clear()

    run_concurrently(
        submitters,
        in_thread(_publish_on_ticks, submitting),
        in_thread(_publish_when_nudged, submitting),
        in_thread(_publish_when_nudged, submitting),
    )
    publish_pending()

    assert Task.objects.count() == CONCURRENT_TASKS
    assert not OutboxEntry.objects.exists()
    for name in topics:
        assert_published_once_in_order(name, 2)


def test_a_batch_failing_amid_a_backlog_keeps_every_topic_in_order(
    transactional_db, settings
):
    settings.SCHEDULER_PUBLISH_BATCH = 50
    ready, unready = (f"t-{uuid.uuid4().hex[:12]}" for _ in range(2))
    topic_create(name=ready)
    Topic.objects.create(name=unready, kafka_error="not created yet")
    # The second batch mixes both topics and fails (its second topic is not in
    # Kafka yet) while the batch after it, of the first topic only, is taken.
    _submit(ready, 90)
    _submit(unready, 10)
    _submit(ready, 400)

    assert publish_pending() == 500

    assert_published_once_in_order(ready, 1)
    assert_published_once_in_order(unready, 1)


def test_a_partitions_recorded_end_never_passes_an_unrecorded_task(
    transactional_db, topic_name, settings
):
    settings.SCHEDULER_PUBLISH_BATCH = 50
    topic = topic_create(name=topic_name)
    for _ in range(6):
        _submit(topic_name, 1000)
    publishing = threading.Event()
    publishing.set()

    def watch() -> list[tuple[int, int]]:
        seen = []
        while publishing.is_set():
            with connection.cursor() as cursor:
                cursor.execute(RECORDED_BELOW_END_SQL, [topic.pk])
                seen += cursor.fetchall()
        return seen

    def publish() -> None:
        try:
            publish_pending()
        finally:
            publishing.clear()

    seen, _ = run_concurrently(in_thread(watch), in_thread(publish))

    assert seen, "the watcher saw no recorded end"
    assert all(end == recorded for end, recorded in seen)
