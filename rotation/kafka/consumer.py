"""Kafka consumers for the slice loop: one per group per process, assign()-based."""

import logging
import time
from dataclasses import dataclass

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from rotation.errors import RotationError
from rotation.lanes import Lane

logger = logging.getLogger(__name__)

# How long the broker may hold a fetch that finds nothing new. A consumer that
# caught up with its lane fetches again as soon as the answer comes, so this
# sets how often it asks. The embedded broker's fetch costs more the more record
# batches a partition holds, and asked that often it stops answering. Measured,
# broker alone, one consumer assigned along one partition: first fetches took
# 0.5 s to over 20 s past ~4,000-5,000 batches at 2 ms, ~10,000 at 5 ms and
# ~16,000-20,000 at 10 ms; at 2 ms the million-task run stalled. At 20 ms,
# bench/rotation.py's backlog phase ran 25% slower in two runs; at 10 ms it did
# not. Kafka answers a held fetch when messages arrive; the embedded broker a
# little later (4.3 ms at the median at 20 ms, 16 ms at 100 ms).
FETCH_WAIT_MAX_MS = 10
# A consumer's next fetch waits for the one in flight, which the broker holds
# for the full wait when its lane had nothing new. A slice that ends usually
# leaves such a fetch behind, so the next slice takes the group's other
# consumer, whose last fetch was answered by then (unless the slice between
# lasted less than the wait): its first fetch starts at once.
CONSUMERS_PER_GROUP = 2
# How far ahead of the slice a lane is read. A slice handles a few hundred to a
# few thousand messages before its lease ends; librdkafka's defaults read up to
# 64 MiB ahead, and the embedded broker answers a first fetch with the whole
# partition whatever the per-partition limit says (it honours the request's
# limit). Measured on it, a 3 MB backlog: the first messages after assign()
# took 10.6 ms at the defaults and 4.5 ms with 256 KiB fetches. The limits are
# soft: a message bigger than a fetch still comes back whole.
FETCH_MAX_BYTES = 256 * 1024
READ_AHEAD_KIB = 1024
COMMIT_TIMEOUT_S = 10.0
METADATA_TIMEOUT_S = 5.0


def consumer_settings(bootstrap_servers: str, group: str) -> dict[str, object]:
    """Return the librdkafka settings of a lane's consumer."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "fetch.wait.max.ms": FETCH_WAIT_MAX_MS,
        "fetch.max.bytes": FETCH_MAX_BYTES,
        # The largest request this consumer sends; fetch.max.bytes may not be
        # smaller (librdkafka would raise it to this, 1 MB by default).
        "message.max.bytes": FETCH_MAX_BYTES,
        "queued.max.messages.kbytes": READ_AHEAD_KIB,
        "socket.timeout.ms": 10000,
    }


@dataclass(frozen=True)
class Record:
    """One consumed message, with the fields the slice loop relies on."""

    topic: str
    partition: int
    offset: int
    value: bytes
    headers: dict[str, bytes]
    timestamp_ms: int

    @classmethod
    def from_message(cls, message: Message) -> "Record":
        return cls(
            topic=message.topic() or "",
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            value=message.value() or b"",
            headers=_headers(message),
            timestamp_ms=message.timestamp()[1],
        )


def _headers(message: Message) -> dict[str, bytes]:
    """Return a message's headers as bytes by name (the last of repeated names)."""
    pairs: list = list(message.headers() or [])
    return {
        name: value.encode() if isinstance(value, str) else value or b""
        for name, value in pairs
    }


class KafkaUnavailable(RotationError):
    """The broker refused or did not answer; the message names it."""


class LogGone(RotationError):
    """Kafka no longer holds messages the lane still needs (data loss)."""


# Fetch errors that mean the lane's messages are gone, not that Kafka is down:
# the offset is outside the log (retention, truncation; with auto.offset.reset
# "error" librdkafka reports it as _AUTO_OFFSET_RESET), or the topic is gone.
GONE_CODES = frozenset(
    (
        KafkaError._AUTO_OFFSET_RESET,
        KafkaError.OFFSET_OUT_OF_RANGE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
    )
)


class LaneConsumer:
    """Read one lane at a time from an explicit offset and commit synchronously.

    Auto-commit and the automatic offset store are off: the only offsets Kafka
    ever sees are the fenced resume points this class is told to commit. An
    offset outside the log is an error, never a silent jump to its start or
    end: that would skip the tasks in between.
    """

    def __init__(self, bootstrap_servers: str, group: str):
        self.bootstrap_servers = bootstrap_servers
        self._known_topics: set[str] = set()
        self._consumer = Consumer(consumer_settings(bootstrap_servers, group))
        # The lane and offset of the last assign(), until anything is polled.
        self._unread: tuple[Lane, int] | None = None

    def assign(self, lane: Lane, offset: int) -> None:
        """Start reading the lane at `offset`.

        Assigned there already, with nothing polled since, it stays as it is:
        the fetch it started is on its way (SliceRunner reads ahead this way).
        A topic this consumer has not read before gets its metadata fetched
        first: measured on the embedded broker, that cuts the first fetch after
        assign() from about 1 s (waiting for a metadata refresh) to about 11 ms.
        """
        if self._unread == (lane, offset):
            return
        try:
            if lane.topic not in self._known_topics:
                self._consumer.list_topics(lane.topic, timeout=METADATA_TIMEOUT_S)
                self._known_topics.add(lane.topic)
            self._consumer.assign([TopicPartition(lane.topic, lane.partition, offset)])
        except KafkaException as exc:
            raise self._unavailable(f"start reading {lane}", exc) from exc
        self._unread = (lane, offset)

    def unassign(self) -> None:
        self._unread = None
        self._consumer.unassign()

    def unassign_unread(self) -> None:
        """Stop a read-ahead that was never read (its slice did not run)."""
        if self._unread is not None:
            self.unassign()

    def poll_batch(self, max_messages: int, timeout_s: float) -> list[Record]:
        """Return up to `max_messages` in offset order, as soon as any is there
        (waiting up to `timeout_s` for the first); raise on a broker error.

        librdkafka's consume() returns only when the batch is full or the
        timeout passed: an idle lane's one new task waited the whole poll
        timeout (50 ms) before its handler ran. So: wait for one message, then
        take whatever else is already fetched without waiting.
        """
        self._unread = None
        try:
            first = self._consumer.poll(timeout_s)
            if first is None:
                return []
            more = max_messages - 1
            rest = self._consumer.consume(more, timeout=0) if more else []
            messages = [first, *rest]
        except KafkaException as exc:
            raise self._unavailable("consume", exc) from exc
        good = []
        for message in messages:
            error = message.error()
            if error is None:
                good.append(Record.from_message(message))
            elif error.code() in GONE_CODES:
                raise LogGone(
                    f"Kafka at {self.bootstrap_servers} no longer holds the "
                    f"requested messages of {message.topic()}/{message.partition()}: "
                    f"{error.str()}"
                )
            elif error.code() != KafkaError._PARTITION_EOF:
                raise self._unavailable("consume", KafkaException(error))
        return good

    def probe(self, lane: Lane, offset: int, timeout_s: float) -> bool | None:
        """Tell whether Kafka holds the lane's message at `offset`: True, False
        (the offset is outside the log), or None (no answer within `timeout_s`).

        The consumer is left assigned at `offset`; assign it where it should be.
        """
        self.assign(lane, offset)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                found = self.poll_batch(1, min(0.1, timeout_s))
            except LogGone:
                return False
            if found:
                return found[0].offset == offset
        return None

    def commit(self, lane: Lane, next_offset: int) -> None:
        """Mirror the lane's fenced resume point in Kafka, synchronously."""
        try:
            self._consumer.commit(
                offsets=[TopicPartition(lane.topic, lane.partition, next_offset)],
                asynchronous=False,
            )
        except KafkaException as exc:
            raise self._unavailable("commit", exc) from exc

    def committed(self, lane: Lane) -> int | None:
        """Return Kafka's committed offset for the lane (for tools and tests)."""
        tp = TopicPartition(lane.topic, lane.partition)
        [result] = self._consumer.committed([tp], timeout=COMMIT_TIMEOUT_S)
        return result.offset if result.offset >= 0 else None

    def close(self) -> None:
        self._consumer.close()

    def _unavailable(self, action: str, exc: KafkaException) -> KafkaUnavailable:
        return KafkaUnavailable(
            f"Kafka at {self.bootstrap_servers} failed to {action}: {exc.args[0]}; "
            "check the broker"
        )


class ConsumerCache:
    """Hand out LaneConsumers per group, created on first use: two that take
    turns, one per slice (see CONSUMERS_PER_GROUP).

    One cache per worker process (its runtime holds it): librdkafka handles
    must never cross a fork, and the runtime is built after the worker starts.
    """

    def __init__(self, bootstrap_servers: str):
        self.bootstrap_servers = bootstrap_servers
        self._consumers: dict[tuple[str, int], LaneConsumer] = {}
        self._current: dict[str, int] = {}

    def get(self, group: str) -> LaneConsumer:
        """Return the consumer of the group's current turn."""
        key = (group, self._current.get(group, 0))
        if key not in self._consumers:
            self._consumers[key] = LaneConsumer(self.bootstrap_servers, group)
        return self._consumers[key]

    def next_turn(self, group: str) -> None:
        """Give the group's next turn the consumer its last turn did not use."""
        self._current[group] = (self._current.get(group, 0) + 1) % CONSUMERS_PER_GROUP

    def close_all(self) -> None:
        """Close the consumers (on worker shutdown)."""
        for consumer in self._consumers.values():
            consumer.close()
        self._consumers = {}
