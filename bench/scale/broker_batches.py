"""How a broker's fetches hold up as a partition fills with small record batches.

Every task the publisher sends on its own is a record batch of its own. The
embedded broker (tansu, memory storage) fetches more slowly the more batches a
partition holds, and stops answering when asked often enough (docs/benchmarks.md,
"The stall's cause"); Kafka finds an offset through its index (not measured
here). Broker alone, no pipeline:

    python -m scheduler_site.devstack exec -- \
        .venv/bin/python bench/scale/broker_batches.py

One fresh one-partition topic gets `--step` one-message batches at a time, up to
`--steps` times; after each step a consumer with the lanes' settings
(rotation/kafka/consumer.py) and `--fetch-wait-ms` is assigned at four points of
the log in turn, and the time to its first message is printed (over
`--give-up-s`: "-"). Run it with the lanes' wait and with others to compare.
The topic is deleted at the end.
"""

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from rotation.kafka.admin import ensure_topics
from rotation.kafka.consumer import FETCH_WAIT_MAX_MS, consumer_settings

FLUSH_TIMEOUT_S = 60.0
POLL_S = 0.05


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--step", type=int, default=2_000)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--fetch-wait-ms", type=int, default=FETCH_WAIT_MAX_MS)
    parser.add_argument("--give-up-s", type=float, default=20.0)
    return parser.parse_args()


def add_batches(producer: Producer, topic: str, count: int) -> None:
    """Send `count` messages, each in a record batch of its own."""
    for n in range(count):
        producer.produce(topic, f"m{n}".encode(), partition=0)
        producer.poll(0)
    if producer.flush(FLUSH_TIMEOUT_S):
        sys.exit(f"the broker did not confirm {count} messages")


def first_message_s(
    consumer: Consumer, topic: str, offset: int, give_up_s: float
) -> float:
    """Assign the consumer at `offset`; return seconds to its first message."""
    started = time.monotonic()
    consumer.assign([TopicPartition(topic, 0, offset)])
    try:
        while time.monotonic() - started < give_up_s:
            message = consumer.poll(POLL_S)
            if message is not None and message.error() is None:
                return time.monotonic() - started
        return float("inf")
    finally:
        consumer.unassign()


def main() -> None:
    args = parse_args()
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"broker-batches-{uuid.uuid4().hex[:8]}"
    if failures := ensure_topics(bootstrap, {topic: 1}, {}):
        sys.exit(f"could not create {topic}: {failures}")
    producer = Producer({"bootstrap.servers": bootstrap, "batch.num.messages": 1})
    settings = consumer_settings(bootstrap, f"{topic}-reader")
    consumer = Consumer({**settings, "fetch.wait.max.ms": args.fetch_wait_ms})
    print(f"{bootstrap}, topic {topic}, fetch.wait.max.ms {args.fetch_wait_ms}")
    print("batches   first message at 0, 1/4, 1/2, 3/4 of the log (ms)   median")
    try:
        for step in range(1, args.steps + 1):
            add_batches(producer, topic, args.step)
            held = step * args.step
            seconds = [
                first_message_s(consumer, topic, held * k // 4, args.give_up_s)
                for k in range(4)
            ]
            shown = "  ".join(_ms(s) for s in seconds)
            print(f"{held:>7,}   {shown:<48} {_ms(statistics.median(seconds))}")
    finally:
        consumer.close()
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.delete_topics([topic], operation_timeout=30)[topic].result()


def _ms(seconds: float) -> str:
    return "-" if seconds == float("inf") else f"{seconds * 1000:.1f}"


if __name__ == "__main__":
    main()
