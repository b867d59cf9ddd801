"""The publisher moves stored tasks to Kafka once each, in order, truly recorded."""

import logging
import random
import threading
import time
import uuid
from datetime import timedelta

import psycopg
from django.conf import settings as django_settings
from django.utils import timezone

from scheduler_site.devstack.process import free_port
from tasks_app.models import OutboxEntry, Task, TaskStatus, Topic
from tasks_app.redis_client import redis_client
from tasks_app.services.publish_nudge import NUDGE_KEY
from tasks_app.services.publisher import PUBLISHER_LOCK_KEY, publish_pending_run
from tasks_app.services.tasks import TaskSpec, task_submit, task_submit_many
from tasks_app.services.topics import topic_create, topic_sync_kafka
from tests.publishing_helpers import (
    assert_published_once_in_order,
    in_thread,
    partition_count,
    read_topic,
    run_concurrently,
)

CONCURRENT_TASKS = 10_000
CONCURRENT_TOPICS = 4
SUBMITTERS = 4
SUBMIT_CHUNK = 100
BEAT_TICK_S = 0.05
NUDGE_POLL_S = 0.002


def _submit(topic: str, count: int, **extra) -> list[Task]:
    specs = [TaskSpec(topic=topic, message={"n": n}, **extra) for n in range(count)]
    return task_submit_many(submitted_by=None, specs=specs)


def test_topic_create_makes_the_kafka_topic_with_its_partitions(
    transactional_db, topic_name
):
    topic = topic_create(name=topic_name, partitions=3)

    assert partition_count(topic_name) == 3
    assert topic.kafka_error == ""
    assert topic_sync_kafka(topics=[topic]) == {}, "an existing topic is fine"


def test_topic_create_stores_the_brokers_reason_when_kafka_fails(
    transactional_db, topic_name, settings
):
    address = f"127.0.0.1:{free_port()}"
    settings.KAFKA_BOOTSTRAP_SERVERS = address

    topic = topic_create(name=topic_name)

    assert address in topic.kafka_error
    assert Topic.objects.get(name=topic_name).kafka_error == topic.kafka_error


def test_publisher_creates_a_kafka_topic_that_failed_before(
    transactional_db, topic_name
):
    Topic.objects.create(name=topic_name, partitions=2, kafka_error="unreachable")
    _submit(topic_name, 1)

    assert publish_pending_run() == 1

    assert partition_count(topic_name) == 2
    assert Topic.objects.get(name=topic_name).kafka_error == ""


def test_published_task_carries_its_id_and_records_where_kafka_put_it(
    transactional_db, topic_name
):
    topic_create(name=topic_name, partitions=2)
    task = task_submit(
        submitted_by=None, spec=TaskSpec(topic=topic_name, message={"a": 1}, key="k")
    )

    assert publish_pending_run() == 1

    task.refresh_from_db()
    [record] = read_topic(topic_name, 2, expected=1)
    assert (task.status, task.partition, task.offset) == (
        TaskStatus.PUBLISHED,
        record.partition,
        record.offset,
    )
    assert task.published_at >= task.created_at
    assert record.key == "k"
    assert record.headers == {
        "task_id": str(task.uuid).encode(),
        "content-type": b"application/json",
    }
    assert record.envelope == {
        "task_id": str(task.uuid),
        "topic": topic_name,
        "key": "k",
        "message": {"a": 1},
        "attempt": 1,
        "submitted_at": task.created_at.isoformat(),
    }
    assert list(task.events.values_list("status", flat=True)) == [
        TaskStatus.PENDING,
        TaskStatus.PUBLISHED,
    ]
    assert not OutboxEntry.objects.exists()


def test_each_delivery_is_logged_at_debug_level_in_the_seeds_words(
    transactional_db, topic_name, caplog
):
    topic_create(name=topic_name)
    _submit(topic_name, 2)

    with caplog.at_level(logging.DEBUG, logger="tasks_app.services.publisher"):
        publish_pending_run()

    assert f"Future completed. Result: Ok((0, 1)) topic={topic_name}" in caplog.text


def test_delayed_task_is_published_only_once_its_run_at_passes(
    transactional_db, topic_name
):
    topic_create(name=topic_name)
    run_at = timezone.now() + timedelta(seconds=2)
    [delayed] = _submit(topic_name, 1, run_at=run_at)
    [due] = _submit(topic_name, 1)

    assert publish_pending_run() == 1
    delayed.refresh_from_db()
    due.refresh_from_db()
    assert (delayed.status, due.status) == (TaskStatus.PENDING, TaskStatus.PUBLISHED)

    time.sleep(max(0.0, (run_at - timezone.now()).total_seconds()) + 0.1)
    assert publish_pending_run() == 1
    delayed.refresh_from_db()
    assert delayed.status == TaskStatus.PUBLISHED
    assert delayed.published_at >= run_at


def test_run_clears_the_nudge_so_the_next_commit_queues_a_run(transactional_db):
    redis_client().set(NUDGE_KEY, "1")

    publish_pending_run()

    assert not redis_client().exists(NUDGE_KEY)


def test_a_run_publishes_nothing_while_another_publisher_is_active(
    transactional_db, topic_name
):
    topic_create(name=topic_name)
    _submit(topic_name, 3)
    db = django_settings.DATABASES["default"]
    with psycopg.connect(
        host=db["HOST"],
        port=db["PORT"],
        user=db["USER"],
        dbname=db["NAME"],
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [PUBLISHER_LOCK_KEY])
        assert publish_pending_run() == 0
        assert Task.objects.filter(status=TaskStatus.PENDING).count() == 3
    assert publish_pending_run() == 3


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
        return publish_pending_run()

    counts = run_concurrently(in_thread(publish), in_thread(publish))

    assert sum(counts) == 2000
    assert_published_once_in_order(topic_name, 1)


def test_tasks_submitted_while_beat_and_nudges_fire_are_published_once_in_order(
    transactional_db, settings
):
    settings.SCHEDULER_PUBLISH_BATCH = 200
    topics = [f"t-{uuid.uuid4().hex[:12]}" for _ in range(CONCURRENT_TOPICS)]
    for name in topics:
        topic_create(name=name, partitions=2)
    submitting = threading.Event()
    submitting.set()

    def submit(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(CONCURRENT_TASKS // SUBMITTERS // SUBMIT_CHUNK):
            specs = [
                TaskSpec(rng.choice(topics), seed, key=f"k{rng.randrange(3)}")
                for _ in range(SUBMIT_CHUNK)
            ]
            task_submit_many(submitted_by=None, specs=specs)

    def beat() -> None:
        while submitting.is_set():
            publish_pending_run()
            time.sleep(BEAT_TICK_S)

    def nudged() -> None:
        while submitting.is_set():
            if redis_client().exists(NUDGE_KEY):
                publish_pending_run()
            time.sleep(NUDGE_POLL_S)

    def submitters() -> None:
        try:
            run_concurrently(*(in_thread(submit, seed) for seed in range(SUBMITTERS)))
        finally:
            submitting.clear()

    run_concurrently(submitters, in_thread(beat), in_thread(nudged), in_thread(nudged))
    publish_pending_run()

    assert Task.objects.count() == CONCURRENT_TASKS
    assert not OutboxEntry.objects.exists()
    for name in topics:
        assert_published_once_in_order(name, 2)
