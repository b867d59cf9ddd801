"""Create Kafka topics idempotently and report the broker's reason on failure."""

import logging

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

logger = logging.getLogger(__name__)

ADMIN_TIMEOUT_S = 10.0


def ensure_topics(
    bootstrap_servers: str, partitions_by_topic: dict[str, int]
) -> dict[str, str]:
    """Create each topic unless it exists; return `{name: error}` for the failures.

    An empty dict means every topic exists now. "Already exists" is success: the
    database row is the truth and Kafka just has to hold the topic.
    """
    if not partitions_by_topic:
        return {}
    admin = _admin(bootstrap_servers)  # must outlive the futures
    futures = admin.create_topics(
        [
            NewTopic(name, num_partitions=count)
            for name, count in partitions_by_topic.items()
        ],
        request_timeout=ADMIN_TIMEOUT_S,
    )
    return _failures(bootstrap_servers, futures, ignore=KafkaError.TOPIC_ALREADY_EXISTS)


def grow_partitions(
    bootstrap_servers: str, partitions_by_topic: dict[str, int]
) -> dict[str, str]:
    """Raise topics that have fewer partitions than wanted; `{name: error}`.

    Only topics whose metadata shows fewer partitions are asked for, so a broker
    without CreatePartitions support is only troubled when growth is needed.
    Note that growing a topic moves keys to other partitions, so per-key order
    holds only among tasks published after the change.
    """
    admin = _admin(bootstrap_servers)  # must outlive the futures
    try:
        metadata = admin.list_topics(timeout=ADMIN_TIMEOUT_S)
    except KafkaException as exc:
        reason = f"Kafka at {bootstrap_servers}: {exc.args[0].str()}"
        return dict.fromkeys(partitions_by_topic, reason)
    short = {
        name: count
        for name, count in partitions_by_topic.items()
        if name in metadata.topics and len(metadata.topics[name].partitions) < count
    }
    if not short:
        return {}
    futures = admin.create_partitions(
        [NewPartitions(name, count) for name, count in short.items()],
        request_timeout=ADMIN_TIMEOUT_S,
    )
    return _failures(bootstrap_servers, futures, ignore=KafkaError.INVALID_PARTITIONS)


def topic_ids(bootstrap_servers: str, names: list[str]) -> dict[str, str | None]:
    """Return Kafka's id of each topic (None for a topic Kafka does not have).

    A topic deleted and created again gets a new id, and has lost its messages:
    that is how a re-created topic is told from the one whose offsets were
    recorded. Raise KafkaException when the broker does not answer.
    """
    if not names:
        return {}
    admin = _admin(bootstrap_servers)  # must outlive the futures
    futures = admin.describe_topics(
        TopicCollection(list(names)), request_timeout=ADMIN_TIMEOUT_S
    )
    ids: dict[str, str | None] = {}
    for name, future in futures.items():
        try:
            ids[name] = str(future.result(timeout=ADMIN_TIMEOUT_S).topic_id)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
            ids[name] = None
    return ids


def _admin(bootstrap_servers: str) -> AdminClient:
    return AdminClient(
        {"bootstrap.servers": bootstrap_servers, "socket.timeout.ms": 5000}
    )


def _failures(bootstrap_servers: str, futures: dict, *, ignore: int) -> dict[str, str]:
    """Wait for admin futures; return the broker's reason for each one that failed."""
    errors: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result(timeout=ADMIN_TIMEOUT_S)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() != ignore:
                errors[name] = f"Kafka at {bootstrap_servers}: {error.str()}"
        except TimeoutError:
            errors[name] = (
                f"Kafka at {bootstrap_servers} did not answer within "
                f"{ADMIN_TIMEOUT_S:.0f} s; check that the broker is running"
            )
    for name, reason in errors.items():
        logger.warning("Kafka admin request for %s failed: %s", name, reason)
    return errors
