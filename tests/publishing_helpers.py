"""Publishing test helpers: read Kafka back (assign(), offset 0), run threads, check."""

import functools
import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import connection

from rotation.kafka.producer import BatchProducer
from tasks_app.models import Task, TaskStatus
from tasks_app.services.publisher.run import publish_pending_run
from tasks_app.worker import runtime

T = TypeVar("T")

POLL_S = 0.2
# After the expected count arrived, keep reading this long to catch duplicates.
SETTLE_S = 1.0
READ_DEADLINE_S = 60.0


@dataclass(frozen=True)
class Record:
    """One record read back: where it is, its envelope and headers."""

    topic: str
    partition: int
    offset: int
    key: str
    envelope: dict
    headers: dict[str, bytes]


@functools.cache
def producer_for(bootstrap_servers: str) -> BatchProducer:
    """Return this test process's producer for a broker (one each, kept: a new
    idempotent producer needs about half a second before it can send)."""
    return BatchProducer(bootstrap_servers)


def publish_pending() -> int:
    """Run the publisher in the test process, as the publisher worker would."""
    return publish_pending_run(
        producer=producer_for(settings.KAFKA_BOOTSTRAP_SERVERS),
        kick_lanes=runtime().kick_lanes,
    )


def partition_count(topic: str) -> int:
    """Ask the broker how many partitions the topic has (0 if it does not exist)."""
    admin = AdminClient({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS})
    found = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
    return 0 if found is None or found.error else len(found.partitions)


def read_topic(topic: str, partitions: int, expected: int) -> list[Record]:
    """Read every partition from offset 0 until `expected` records arrived and the
    topic stayed quiet for SETTLE_S (watermarks are unreliable on this broker)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records: list[Record] = []
    deadline = time.monotonic() + READ_DEADLINE_S
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if len(records) >= expected and time.monotonic() - quiet_since > SETTLE_S:
                break
            message = consumer.poll(POLL_S)
            if message is None or message.error():
                continue
            quiet_since = time.monotonic()
            records.append(_record(message))
    finally:
        consumer.close()
    return records


def _record(message: Message) -> Record:
    """Read a consumed message (one without an error: every field is set)."""
    return Record(
        message.topic() or "",
        message.partition() or 0,
        message.offset() or 0,
        (message.key() or b"").decode(),
        json.loads(message.value() or b"null"),
        dict(cast(list[tuple[str, bytes]], message.headers() or [])),
    )


def in_thread(target: Callable[..., T], *args: Any) -> Callable[[], T]:
    """Wrap a call so it closes its thread's own database connection when done."""

    def run() -> T:
        try:
            return target(*args)
        finally:
            connection.close()

    return run


def run_concurrently(*calls: Callable[[], Any]) -> list[Any]:
    """Run each call in its own thread; return results, re-raising any failure."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


def assert_published_once_in_order(topic: str, partitions: int) -> list[Record]:
    """Check that Kafka holds every task of the topic exactly once, each partition
    in task-id (submission) order, where the task rows say; return the records."""
    tasks = {str(t.uuid): t for t in Task.objects.filter(topic__name=topic)}
    records = read_topic(topic, partitions, expected=len(tasks))
    seen = [r.envelope["task_id"] for r in records]
    assert len(seen) == len(set(seen)), "a task was published twice"
    assert set(seen) == set(tasks), "Kafka and the database disagree"
    for partition in range(partitions):
        ids = [
            tasks[r.envelope["task_id"]].id for r in records if r.partition == partition
        ]
        assert ids == sorted(ids), f"partition {partition} is out of order"
    for record in records:
        task = tasks[record.envelope["task_id"]]
        assert task.status == TaskStatus.PUBLISHED
        assert (task.partition, task.offset) == (record.partition, record.offset)
    return records
