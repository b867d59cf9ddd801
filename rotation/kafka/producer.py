"""Produce batches to Kafka in order through one idempotent producer per process."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from rotation.errors import RotationError

logger = logging.getLogger(__name__)
CLIENT_LOGGER = logging.getLogger(__name__ + ".librdkafka")

# A batch whose deliveries are not confirmed within this time fails, so a dead or
# frozen broker makes the caller roll back and log instead of hang. A broker that
# stalls for less than this still takes the batch exactly once, just late.
DELIVERY_TIMEOUT_S = 10.0
# Extra wait past the delivery timeout so every message gets its final report.
FLUSH_MARGIN_S = 5.0
# A short wait lets one request carry many messages; flush() sends at once anyway.
LINGER_MS = 5
# How long the reachability probe waits for the broker's metadata answer.
PROBE_TIMEOUT_S = 2.0
# librdkafka's "unassigned partition": the producer's partitioner picks by key.
ANY_PARTITION = -1
# When the local queue is full, serve delivery reports this long and retry.
QUEUE_FULL_POLL_S = 0.05


class ProduceError(RotationError):
    """Kafka did not confirm a whole batch; none of it may be counted as sent."""

    def __init__(self, bootstrap_servers: str, reason: str, *, failed: int) -> None:
        super().__init__(f"Kafka at {bootstrap_servers} {reason}")
        self.bootstrap_servers = bootstrap_servers
        self.reason = reason
        self.failed = failed


class BrokerUnreachable(ProduceError):
    """The broker did not answer a metadata request; nothing was sent."""


Headers = list[tuple[str, str | bytes | None]]


class OutgoingMessage(NamedTuple):
    """One record to produce: topic, key, value, headers, and a partition when the
    key's own partition will not do (re-publishing into a known partition)."""

    topic: str
    key: str
    value: str | bytes
    headers: Headers | None = None
    partition: int | None = None


class Delivery(NamedTuple):
    """Where Kafka stored one record."""

    topic: str
    partition: int
    offset: int


class _ClientLog:
    """Pass librdkafka's own lines on at debug level: while the broker is down it
    reports every reconnect attempt, and callers log one clear line instead."""

    def log(self, level: int, message: str, *args: Any) -> None:
        CLIENT_LOGGER.debug(message, *args)


class _Reports:
    """Collect delivery reports by message index, in whatever order they arrive."""

    def __init__(self, size: int) -> None:
        self.deliveries: list[Delivery | None] = [None] * size
        self.errors: list[KafkaError] = []

    def record(self, index: int, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.errors.append(error)
            return
        # A delivered message always has its topic, partition and offset.
        self.deliveries[index] = Delivery(
            message.topic(),  # type: ignore[arg-type]
            message.partition(),  # type: ignore[arg-type]
            message.offset(),  # type: ignore[arg-type]
        )


class BatchProducer:
    """Send batches with an idempotent producer (`acks=all`) and confirm each one.

    Records of one batch keep their order per partition. After any failed batch
    the underlying producer is replaced: librdkafka's idempotent producer stays
    fenced after in-flight messages time out, and a fresh one starts clean.

    It is replaced before a batch, too, once every broker was unreachable since
    the last one: a broker that comes back without its data (tansu's memory
    storage, a restored cluster) may also have forgotten the producer's id and
    refuse each retry until the delivery timeout. A new producer costs one
    InitProducerId round trip, and nothing is in flight between batches.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        delivery_timeout_s: float = DELIVERY_TIMEOUT_S,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.delivery_timeout_s = delivery_timeout_s
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": LINGER_MS,
            "message.timeout.ms": int(delivery_timeout_s * 1000),
            "logger": _ClientLog(),
            "error_cb": self._on_client_error,
        }
        self._producer = Producer(self._config)
        self._brokers_lost = False

    def _on_client_error(self, error: KafkaError) -> None:
        """Note client-level errors quietly; failed batches are reported by callers."""
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._brokers_lost = True
        if error.fatal():
            logger.warning(
                "Kafka producer for %s hit a fatal error (%s); the next batch "
                "fails and a fresh producer takes over.",
                self.bootstrap_servers,
                error.str(),
            )
        else:
            CLIENT_LOGGER.debug("Kafka at %s: %s", self.bootstrap_servers, error)

    def probe(self, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        """Raise BrokerUnreachable unless the broker answers a metadata request."""
        try:
            self._producer.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise BrokerUnreachable(
                self.bootstrap_servers, _describe(exc.args[0]), failed=0
            ) from exc

    def produce_batch(self, messages: Sequence[OutgoingMessage]) -> list[Delivery]:
        """Produce every message and wait for all reports; raise ProduceError if any
        failed, so the caller can keep the whole batch for a later retry."""
        self._renew_if_brokers_lost()
        reports = _Reports(len(messages))
        try:
            self._produce_all(messages, reports)
        except KafkaException as exc:  # a fatal producer state refuses new records
            self._replace_producer()
            raise self._error(_describe(exc.args[0]), len(messages)) from exc
        wait_s = self.delivery_timeout_s + FLUSH_MARGIN_S
        left = self._producer.flush(wait_s)
        if reports.errors:
            self._replace_producer()
            raise self._error(_describe(reports.errors[0]), len(reports.errors) + left)
        if left:
            self._replace_producer()
            reason = f"left {left} deliveries unconfirmed after {wait_s} s"
            raise self._error(reason, left)
        return reports.deliveries  # type: ignore[return-value]

    def _error(self, reason: str, failed: int) -> ProduceError:
        return ProduceError(self.bootstrap_servers, reason, failed=failed)

    def _produce_all(
        self, messages: Sequence[OutgoingMessage], reports: _Reports
    ) -> None:
        """Hand the records to librdkafka, waiting out a full local queue.

        The loop is the hot path of publishing, hence the local names.
        """
        produce, poll, record = (
            self._producer.produce,
            self._producer.poll,
            reports.record,
        )
        for index, (topic, key, value, headers, partition) in enumerate(messages):
            on_delivery = partial(record, index)
            placed = ANY_PARTITION if partition is None else partition
            while True:
                try:
                    produce(
                        topic,
                        value,
                        key,
                        placed,
                        headers=headers,
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:
                    poll(QUEUE_FULL_POLL_S)
            poll(0)

    def _renew_if_brokers_lost(self) -> None:
        """Start a fresh producer if every broker went away since the last batch."""
        self._producer.poll(0)  # serves the error callbacks queued meanwhile
        if self._brokers_lost:
            logger.info(
                "Kafka at %s was unreachable since the last batch; producing "
                "through a new producer in case it lost its producer ids",
                self.bootstrap_servers,
            )
            self._replace_producer()

    def _replace_producer(self) -> None:
        """Drop whatever the old producer still holds and start a fresh one."""
        self._producer.purge()
        self._producer.flush(0)
        self._producer = Producer(self._config)
        self._brokers_lost = False


def key_partition(key: str, partitions: int) -> int:
    """Return the partition of a key, as librdkafka's default (consistent)
    partitioner picks it: CRC-32 of the key, modulo the partition count."""
    return zlib.crc32(key.encode()) % partitions


UNREACHABLE_CODES = frozenset(
    (KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN)
)


def _describe(error: KafkaError) -> str:
    """Finish the sentence "Kafka at <address> ..." in words a person can act on."""
    code = error.code()
    if code in UNREACHABLE_CODES:
        return f"is unreachable ({error.str()})"
    if code == KafkaError._MSG_TIMED_OUT:
        return "did not confirm delivery in time (broker down or stalled)"
    return f"refused the batch ({error.str()})"
