"""Create Kafka topics idempotently and report the broker's reason on failure."""

import logging

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

logger = logging.getLogger(__name__)

ADMIN_TIMEOUT_S = 10.0


# Task topics keep every message until it is deleted on purpose: Kafka cannot
# know when a task has finished, and a message deleted by time or size before
# its task ran would have to be healed from PostgreSQL (see
# tasks_app.services.healing). The broker default (often 7 days) would delete a
# paused topic's backlog. The cost is disk: a task topic grows with its traffic.
KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}


def ensure_topics(
    bootstrap_servers: str,
    partitions_by_topic: dict[str, int],
    configs: dict[str, dict[str, str]] | None = None,
) -> dict[str, str]:
    """Create each topic unless it exists; return `{name: error}` for the failures.

    `configs` gives topic configs (by name) to create with and to set on a topic
    that exists already. An empty answer means every topic exists now, with
    them. "Already exists" is success: the database row is the truth and Kafka
    just has to hold the topic.
    """
    if not partitions_by_topic:
        return {}
    configs = configs or {}
    admin = _admin(bootstrap_servers)  # must outlive the futures
    futures = admin.create_topics(
        [
            NewTopic(name, num_partitions=count, config=configs.get(name, {}))
            for name, count in partitions_by_topic.items()
        ],
        request_timeout=ADMIN_TIMEOUT_S,
    )
    errors = _failures(
        bootstrap_servers, futures, ignore=KafkaError.TOPIC_ALREADY_EXISTS
    )
    wanted = {name: config for name, config in configs.items() if name not in errors}
    errors.update(_configs_set(admin, bootstrap_servers, wanted))
    return errors


def _configs_set(
    admin: AdminClient, bootstrap_servers: str, configs: dict[str, dict[str, str]]
) -> dict[str, str]:
    """Set topic configs (existing topics may predate them); `{name: error}`."""
    resources = [
        ConfigResource(
            ResourceType.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in config.items()
            ],
        )
        for name, config in configs.items()
        if config
    ]
    if not resources:
        return {}
    futures = admin.incremental_alter_configs(
        resources, request_timeout=ADMIN_TIMEOUT_S
    )
    named = {resource.name: future for resource, future in futures.items()}
    return _failures(bootstrap_servers, named, ignore=KafkaError.NO_ERROR)


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
    recorded. Raise KafkaException when the broker does not answer in time.
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
        except TimeoutError as exc:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT)) from exc
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
