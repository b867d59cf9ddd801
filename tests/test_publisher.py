"""The publisher moves stored tasks to Kafka once each, in order, truly recorded."""

import logging
import time
from datetime import timedelta

import psycopg
from django.conf import settings as django_settings
from django.utils import timezone

from tasks_app.models import OutboxEntry, Task, TaskStatus, Topic
from tasks_app.redis_client import redis_client
from tasks_app.services.publish_nudge import NUDGE_KEY
from tasks_app.services.publisher_lock import PUBLISHER_LOCK_KEY
from tasks_app.services.tasks import TaskSpec, task_submit, task_submit_many
from tasks_app.services.topics import topic_create, topic_sync_kafka
from tests.publishing_helpers import partition_count, publish_pending, read_topic


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


def test_publisher_creates_a_kafka_topic_that_failed_before(
    transactional_db, topic_name
):
    Topic.objects.create(name=topic_name, partitions=2, kafka_error="unreachable")
    _submit(topic_name, 1)

    assert publish_pending() == 1

    assert partition_count(topic_name) == 2
    assert Topic.objects.get(name=topic_name).kafka_error == ""


def test_published_task_carries_its_id_and_records_where_kafka_put_it(
    transactional_db, topic_name
):
    topic_create(name=topic_name, partitions=2)
    task = task_submit(
        submitted_by=None, spec=TaskSpec(topic=topic_name, message={"a": 1}, key="k")
    )

    assert publish_pending() == 1

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


def test_a_full_bulk_submission_is_published_in_one_batch(transactional_db, topic_name):
    """A batch holds as many tasks as one bulk submission may (so the publisher
    never holds more than a submission did): under a backlog, half the
    transactions and produce requests a task of batches of 500 (measured in
    docs/benchmarks.md, "Throughput over time, 12-02 afternoon")."""
    topic_create(name=topic_name)
    _submit(topic_name, django_settings.SCHEDULER_MAX_BULK_TASKS)

    publish_pending()

    published = Task.objects.filter(topic__name=topic_name)
    assert published.exclude(status=TaskStatus.PUBLISHED).count() == 0
    assert published.order_by().values("published_at").distinct().count() == 1, (
        "one batch: one statement's timestamp"
    )


def test_the_api_shows_what_the_publisher_sent_and_what_it_did_not(
    transactional_db, topic_name, operator_client
):
    topic_create(name=topic_name)
    [later] = _submit(topic_name, 1, run_at=timezone.now() + timedelta(hours=1))
    [sent] = _submit(topic_name, 1)
    publish_pending()

    assert operator_client.get("/tasks").json() == [
        {"topic": topic_name, "message": later.message}
    ]
    body = operator_client.get(f"/api/tasks/{sent.uuid}/").json()
    sent.refresh_from_db()
    assert (body["status"], body["partition"], body["offset"]) == (
        "published",
        sent.partition,
        sent.offset,
    )
    assert [e["status"] for e in body["events"]] == ["pending", "published"]


def test_each_delivery_is_logged_at_debug_level_in_the_seeds_words(
    transactional_db, topic_name, caplog
):
    topic_create(name=topic_name)
    _submit(topic_name, 2)

    with caplog.at_level(logging.DEBUG, logger="tasks_app.services.publisher"):
        publish_pending()

    assert f"Future completed. Result: Ok((0, 1)) topic={topic_name}" in caplog.text


def test_delayed_task_is_published_only_once_its_run_at_passes(
    transactional_db, topic_name
):
    topic_create(name=topic_name)
    run_at = timezone.now() + timedelta(seconds=2)
    [delayed] = _submit(topic_name, 1, run_at=run_at)
    [due] = _submit(topic_name, 1)

    assert publish_pending() == 1
    delayed.refresh_from_db()
    due.refresh_from_db()
    assert (delayed.status, due.status) == (TaskStatus.PENDING, TaskStatus.PUBLISHED)

    time.sleep(max(0.0, (run_at - timezone.now()).total_seconds()) + 0.1)
    assert publish_pending() == 1
    delayed.refresh_from_db()
    assert delayed.status == TaskStatus.PUBLISHED
    assert delayed.published_at >= run_at


def test_run_clears_the_nudge_so_the_next_commit_queues_a_run(transactional_db):
    redis_client().set(NUDGE_KEY, "1")

    publish_pending()

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
        assert publish_pending() == 0
        assert Task.objects.filter(status=TaskStatus.PENDING).count() == 3
    assert publish_pending() == 3


def test_key_partition_matches_the_partitioner_kafka_clients_use(topic_name):
    """The publisher picks partitions itself; it must agree with librdkafka's
    default partitioner, so keys keep their partitions across the upgrade."""
    from confluent_kafka import Producer

    from rotation.kafka.admin import ensure_topics
    from rotation.kafka.producer import key_partition

    ensure_topics(django_settings.KAFKA_BOOTSTRAP_SERVERS, {topic_name: 7})
    producer = Producer({"bootstrap.servers": django_settings.KAFKA_BOOTSTRAP_SERVERS})
    placed: dict[str, int] = {}
    keys = [f"customer-{n}" for n in range(60)] + ["A", "ü-key", topic_name]
    for key in keys:
        producer.produce(
            topic_name,
            b"x",
            key.encode(),
            on_delivery=lambda err, msg: placed.__setitem__(
                msg.key().decode(), msg.partition()
            ),
        )
    assert producer.flush(30) == 0
    assert placed == {key: key_partition(key, 7) for key in keys}


def _retention_ms(topic: str) -> str:
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": django_settings.KAFKA_BOOTSTRAP_SERVERS})
    [future] = admin.describe_configs(
        [ConfigResource(ResourceType.TOPIC, topic)]
    ).values()
    return future.result(timeout=10)["retention.ms"].value


def test_task_topics_keep_their_messages_until_deleted_on_purpose(
    transactional_db, topic_name
):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": django_settings.KAFKA_BOOTSTRAP_SERVERS})
    for future in admin.create_topics(
        [NewTopic(topic_name, 1, config={"retention.ms": "3600000"})]
    ).values():
        future.result(timeout=10)  # made before, with a retention of one hour

    topic = topic_create(name=topic_name)
    created = topic_create(name=f"{topic_name}-new")

    assert _retention_ms(topic.name) == "-1"
    assert _retention_ms(created.name) == "-1"
