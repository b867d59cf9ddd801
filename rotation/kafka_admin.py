"""Create Kafka topics idempotently and report the broker's reason on failure."""

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

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
    admin = AdminClient(
        {"bootstrap.servers": bootstrap_servers, "socket.timeout.ms": 5000}
    )
    futures = admin.create_topics(
        [
            NewTopic(name, num_partitions=count)
            for name, count in partitions_by_topic.items()
        ],
        request_timeout=ADMIN_TIMEOUT_S,
    )
    errors: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result(timeout=ADMIN_TIMEOUT_S)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                errors[name] = f"Kafka at {bootstrap_servers}: {error.str()}"
        except TimeoutError:
            errors[name] = (
                f"Kafka at {bootstrap_servers} did not answer within "
                f"{ADMIN_TIMEOUT_S:.0f} s; check that the broker is running"
            )
    for name, reason in errors.items():
        logger.warning("Could not create Kafka topic %s: %s", name, reason)
    return errors
