"""Bare confluent-kafka produce + consume of the same envelopes: the upper bound.

One idempotent producer (the publisher's settings) sends every envelope, then
one assign()-based consumer reads them all back from explicit offsets.
"""

import time

from confluent_kafka import Consumer, Producer, TopicPartition

from rotation.kafka.admin import ensure_topics
from rotation.kafka.producer import LINGER_MS, Headers

FLUSH_TIMEOUT_S = 60.0
CONSUME_BATCH = 1000
CONSUME_TIMEOUT_S = 0.1
READ_DEADLINE_S = 120.0
METADATA_TIMEOUT_S = 10.0

# (topic, key, envelope, task id)
Record = tuple[str, str, str, str]


def _warm_producer(bootstrap: str, topic: str) -> Producer:
    """Return a producer past its start-up (a new idempotent one needs ~500 ms),
    having sent one warm-up message to `topic`."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": LINGER_MS,
        }
    )
    producer.produce(topic, b"warm-up")
    producer.flush(FLUSH_TIMEOUT_S)
    return producer


def _produce(producer: Producer, records: list[Record]) -> None:
    for topic, key, envelope, task_id in records:
        headers: Headers = [("task_id", task_id), ("content-type", b"application/json")]
        while True:
            try:
                producer.produce(topic, envelope, key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(FLUSH_TIMEOUT_S)
    if left:
        raise SystemExit(f"bare Kafka: {left} messages undelivered")


def _consume(bootstrap: str, topics: list[str], count: int) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-bare",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    for topic in topics:
        consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S)
    consumer.assign([TopicPartition(topic, 0, 0) for topic in topics])
    seen, deadline = 0, time.monotonic() + READ_DEADLINE_S
    try:
        while seen < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"bare Kafka: read {seen} of {count} messages")
            batch = consumer.consume(CONSUME_BATCH, timeout=CONSUME_TIMEOUT_S)
            seen += sum(1 for message in batch if message.error() is None)
    finally:
        consumer.close()


def bare_kafka_rate(*, bootstrap: str, records: list[Record]) -> float:
    """Create the records' topics (one partition each), then time produce + consume.

    Return messages/s over both phases together (the producer's start-up and
    its warm-up message are not timed; reading that message back is).
    """
    topics = sorted({record[0] for record in records})
    failures = ensure_topics(bootstrap, dict.fromkeys(topics, 1))
    if failures:
        raise SystemExit(f"bare Kafka: could not create topics: {failures}")
    producer = _warm_producer(bootstrap, topics[0])
    started = time.monotonic()
    _produce(producer, records)
    _consume(bootstrap, topics, len(records) + 1)
    return len(records) / (time.monotonic() - started)
