"""The slice loop's Kafka consumer against a real broker (rotation/kafka)."""

import os
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from rotation.kafka.admin import ensure_topics
from rotation.kafka.consumer import (
    FETCH_MAX_BYTES,
    LaneConsumer,
    Record,
    consumer_settings,
)
from rotation.kafka.producer import OutgoingMessage
from rotation.lanes import Lane
from rotation.log_check import PROBE_TIMEOUT_S
from tests.publishing_helpers import producer_for

# Far longer than any fetch from a local broker takes: a poll that waits it out
# shows up however loaded the machine is.
LONG_TIMEOUT_S = 20.0


def _lane_with(messages: int) -> Lane:
    """A fresh one-partition topic holding `messages` records."""
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    lane = Lane("g", f"consumer-{uuid.uuid4().hex[:10]}", 0)
    assert ensure_topics(bootstrap, {lane.topic: 1}, {}) == {}
    producer_for(bootstrap).produce_batch(
        [OutgoingMessage(lane.topic, "k", f"m{n}", None, 0) for n in range(messages)]
    )
    return lane


def _first_batch(lane: Lane, offset: int, size: int) -> list[Record]:
    """Assign a fresh consumer at `offset`; return the first batch it polls."""
    consumer = LaneConsumer(os.environ["KAFKA_BOOTSTRAP_SERVERS"], "g")
    try:
        consumer.assign(lane, offset)
        batch = consumer.poll_batch(size, LONG_TIMEOUT_S)
        while not batch:
            batch = consumer.poll_batch(size, LONG_TIMEOUT_S)
        return batch
    finally:
        consumer.close()


def test_a_batch_comes_back_as_soon_as_messages_are_there_not_when_full():
    """An idle lane gets one new task: the slice must not wait out the poll
    timeout for a batch it will never fill (librdkafka's consume() does)."""
    lane = _lane_with(3)
    consumer = LaneConsumer(os.environ["KAFKA_BOOTSTRAP_SERVERS"], "g")
    try:
        consumer.assign(lane, 0)
        started = time.monotonic()
        records = []
        while len(records) < 3:
            records += consumer.poll_batch(20, LONG_TIMEOUT_S)
        waited = time.monotonic() - started
    finally:
        consumer.close()

    assert [r.value for r in records] == [b"m0", b"m1", b"m2"]
    assert waited < LONG_TIMEOUT_S / 2, f"waited {waited:.1f} s for 3 messages"


def test_a_batch_holds_at_most_the_messages_asked_for_in_offset_order():
    batch = _first_batch(_lane_with(50), 10, 20)

    assert 1 <= len(batch) <= 20
    assert [r.offset for r in batch] == list(range(10, 10 + len(batch)))


def test_a_batch_of_one_is_one_message():
    batch = _first_batch(_lane_with(2), 0, 1)

    assert [r.offset for r in batch] == [0]


def test_a_lane_is_read_a_bounded_window_ahead_not_to_the_end_of_its_backlog():
    """A slice handles a few hundred messages before its lease ends; reading
    the whole backlog ahead made each hand-off's first fetch wait for all of it
    (3.2 MB in one answer from the embedded broker) and threw the rest away."""
    lane = _lane_with(0)
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    backlog = 40_000  # about 6 MB
    producer_for(bootstrap).produce_batch(
        [OutgoingMessage(lane.topic, "k", "x" * 150, None, 0)] * backlog
    )
    consumer = Consumer(consumer_settings(bootstrap, "g"))
    try:
        consumer.assign([TopicPartition(lane.topic, 0, 0)])
        assert consumer.poll(LONG_TIMEOUT_S) is not None
        time.sleep(1.0)  # time to read ahead as far as it will
        read_ahead = consumer.consume(backlog, timeout=0)
    finally:
        consumer.close()

    assert 0 < len(read_ahead) < backlog / 2


def test_a_message_bigger_than_a_fetch_still_comes_back_whole():
    """The fetch limits are soft (KIP-74): a task's message may be as large as
    SCHEDULER_MAX_MESSAGE_BYTES (256 KiB) plus its envelope."""
    big = "y" * (FETCH_MAX_BYTES + 50_000)
    lane = _lane_with(0)
    producer_for(os.environ["KAFKA_BOOTSTRAP_SERVERS"]).produce_batch(
        [OutgoingMessage(lane.topic, "k", value, None, 0) for value in ("a", big, "b")]
    )

    batch = _first_batch(lane, 1, 2)

    assert batch[0].value == big.encode()


def test_a_lane_whose_log_holds_thousands_of_small_batches_is_still_read():
    """A task published on its own is a record batch of its own. The embedded
    broker's fetch costs more the more batches a partition holds, and consumers
    at a lane's end that fetched again every 2 ms overwhelmed it: at 5,000
    batches a first fetch took 1 s at the median, at 6,000 over 20 s, and every
    slice of the lane failed as if the broker were down (measured 2026-11-30;
    the million-task run stalled)."""
    lane = _lane_with(0)
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    batches = 6_000
    one_per_batch = Producer({"bootstrap.servers": bootstrap, "batch.num.messages": 1})
    for n in range(batches):
        one_per_batch.produce(lane.topic, f"m{n}".encode(), partition=0)
        one_per_batch.poll(0)
    assert one_per_batch.flush(LONG_TIMEOUT_S) == 0
    at_end, reader = (LaneConsumer(bootstrap, "g") for _ in range(2))
    try:
        at_end.assign(lane, batches)  # a caught-up slice, fetching at the end
        at_end.poll_batch(1, 0.5)

        assert reader.probe(lane, batches // 2, PROBE_TIMEOUT_S) is True
    finally:
        at_end.close()
        reader.close()
