"""The publisher under failure: broker down or frozen, failed batches, racing cancel."""

import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from rotation.kafka.producer import BatchProducer, OutgoingMessage, ProduceError
from scheduler_site.devstack.brokers import start_kafka
from scheduler_site.devstack.process import free_port
from tasks_app.errors import Conflict
from tasks_app.models import OutboxEntry, Task, TaskStatus
from tasks_app.services.publisher.batch import publish_batch
from tasks_app.services.tasks import TaskSpec, task_cancel, task_submit_many
from tasks_app.services.topics import topic_create
from tests.publishing_helpers import (
    assert_published_once_in_order,
    in_thread,
    publish_pending,
    read_topic,
    run_concurrently,
)

PAUSE_S = 3.0
PAUSED_TASKS = 4000
PAUSED_BATCH = 20
DEADLINE_S = 60.0
WATCH_S = 0.005
CANCEL_ROUNDS = 40
TASKS_PER_ROUND = 10


def _submit(topic: str, count: int) -> list[Task]:
    specs = [TaskSpec(topic=topic, message={"n": n}) for n in range(count)]
    return task_submit_many(submitted_by=None, specs=specs)


def _pending() -> int:
    return Task.objects.filter(status=TaskStatus.PENDING).count()


def test_unreachable_broker_keeps_tasks_pending_and_logs_its_address(
    transactional_db, topic_name, settings, caplog
):
    topic_create(name=topic_name)
    broker, address = settings.KAFKA_BOOTSTRAP_SERVERS, f"127.0.0.1:{free_port()}"
    settings.KAFKA_BOOTSTRAP_SERVERS = address
    _submit(topic_name, 3)  # the API side keeps accepting tasks

    with caplog.at_level(logging.WARNING):
        assert publish_pending() == 0
        assert publish_pending() == 0

    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 2, "one line per attempt"
    assert all(f"Kafka at {address} is unreachable" in line for line in lines)
    assert all("3 tasks stay pending" in line for line in lines)
    assert (_pending(), OutboxEntry.objects.count()) == (3, 3)
    settings.KAFKA_BOOTSTRAP_SERVERS = broker
    assert publish_pending() == 3
    assert_published_once_in_order(topic_name, 1)


def test_failed_delivery_returns_the_whole_batch_to_the_outbox(
    transactional_db, topic_name
):
    topic_create(name=topic_name)
    _submit(topic_name, 1)
    publish_pending()  # the topic is confirmed in Kafka from here on
    _submit(topic_name, 5)
    dead = BatchProducer(f"127.0.0.1:{free_port()}", delivery_timeout_s=1.0)

    with pytest.raises(ProduceError, match="did not confirm delivery"):
        publish_batch(producer=dead)

    assert (_pending(), OutboxEntry.objects.count()) == (5, 5)
    assert publish_pending() == 5
    assert_published_once_in_order(topic_name, 1)


def test_a_dead_broker_does_not_flood_the_log_with_client_lines(caplog):
    dead = BatchProducer(f"127.0.0.1:{free_port()}", delivery_timeout_s=1.0)

    with caplog.at_level(logging.WARNING), pytest.raises(ProduceError):
        dead.produce_batch([OutgoingMessage("any-topic", "key", "value")])

    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def _create_topic(address: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": address})
    admin.create_topics([NewTopic(name, 1)])[name].result(10)


def test_a_producer_delivers_again_once_a_broker_that_lost_its_memory_is_back(
    tmp_path: Path,
) -> None:
    # The broker that comes back has forgotten the producer's id: librdkafka
    # retries under it until the delivery timeout, so only a new producer helps.
    port = free_port()
    broker = start_kafka(tmp_path, port, persistent=False)
    try:
        address = broker.url
        _create_topic(address, "kept")
        producer = BatchProducer(address, delivery_timeout_s=3.0)
        producer.produce_batch([OutgoingMessage("kept", "key", "before")])
        broker.stop()
        broker = start_kafka(tmp_path, port, persistent=False)
        _create_topic(address, "kept")

        deliveries = producer.produce_batch([OutgoingMessage("kept", "key", "after")])

        assert [d.offset for d in deliveries] == [0]
    finally:
        broker.stop()


def test_broker_frozen_mid_publish_loses_and_duplicates_nothing(
    transactional_db, topic_name, settings, devstack
):
    broker_pid = devstack.services["kafka"].pid
    if broker_pid is None:
        pytest.skip("the broker was not started by this test run")
    settings.SCHEDULER_PUBLISH_BATCH = PAUSED_BATCH
    topic_create(name=topic_name)
    for _ in range(PAUSED_TASKS // 1000):
        _submit(topic_name, 1000)
    deadline = time.monotonic() + DEADLINE_S

    def publish_all() -> None:
        while _pending() and time.monotonic() < deadline:
            publish_pending()

    publisher = threading.Thread(target=in_thread(publish_all))
    publisher.start()
    try:
        while _pending() == PAUSED_TASKS and publisher.is_alive():
            time.sleep(WATCH_S)
        os.kill(broker_pid, signal.SIGSTOP)
        time.sleep(PAUSE_S)
    finally:
        os.kill(broker_pid, signal.SIGCONT)
        publisher.join()

    assert _pending() == 0
    assert_published_once_in_order(topic_name, 1)


def _race_cancel_and_publish(task: Task) -> bool:
    """Start a cancel and a publisher run at once; tell whether the cancel won."""
    start = threading.Barrier(2)

    def cancel() -> bool:
        start.wait()
        try:
            task_cancel(task_id=task.uuid)
        except Conflict:
            return False
        return True

    def publish() -> None:
        start.wait()
        publish_pending()

    won, _ = run_concurrently(in_thread(cancel), in_thread(publish))
    return won


def test_cancel_racing_publish_ends_cancelled_or_published(
    transactional_db, topic_name
):
    topic_create(name=topic_name)
    cancelled, refused = [], []
    for round_ in range(CANCEL_ROUNDS):
        target = _submit(topic_name, TASKS_PER_ROUND)[round_ % TASKS_PER_ROUND]
        (cancelled if _race_cancel_and_publish(target) else refused).append(target)
    publish_pending()

    expected = Task.objects.count() - len(cancelled)
    in_kafka = {r.envelope["task_id"] for r in read_topic(topic_name, 1, expected)}
    for task in cancelled:
        task.refresh_from_db()
        assert (task.status, task.offset) == (TaskStatus.CANCELLED, None)
        assert str(task.uuid) not in in_kafka
    for task in refused:
        task.refresh_from_db()
        assert task.status == TaskStatus.PUBLISHED
        assert str(task.uuid) in in_kafka
    assert len(in_kafka) == Task.objects.exclude(status=TaskStatus.CANCELLED).count()
