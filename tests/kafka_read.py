"""Read a whole topic from the start with an assign()-based consumer."""

import os
import uuid

from confluent_kafka import Consumer, Message, TopicPartition

from tests.cluster import wait_for


def read_topic(
    topic: str, *, expected: int, partitions: int = 1, timeout_s: float = 30.0
) -> list[Message]:
    """Return the first `expected` messages of the topic (all partitions)."""
    consumer = Consumer(
        {
            "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen: list[Message] = []

    def enough() -> bool:
        seen.extend(m for m in consumer.consume(1000, timeout=0.2) if not m.error())
        return len(seen) >= expected

    try:
        wait_for(enough, timeout_s=timeout_s, what=f"{expected} messages on {topic}")
    finally:
        consumer.close()
    return seen


def _group_consumer(group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": group,
            "enable.auto.commit": False,
        }
    )


def commit_offset(group: str, topic: str, partition: int, offset: int) -> None:
    """Commit an offset for a group, as a stale consumer might do late."""
    consumer = _group_consumer(group)
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, partition, offset)], asynchronous=False
        )
    finally:
        consumer.close()


def committed_offset(group: str, topic: str, partition: int) -> int:
    """Return the group's committed offset for a partition (-1001 when none)."""
    consumer = _group_consumer(group)
    try:
        [tp] = consumer.committed([TopicPartition(topic, partition)], timeout=10)
        return tp.offset
    finally:
        consumer.close()
