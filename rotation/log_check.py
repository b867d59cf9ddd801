"""Tell a lane whose messages Kafka lost from one whose broker is merely slow.

PostgreSQL records where each partition's log ends. A lane below that end that
gets no message for a while either waits on a slow broker, or Kafka no longer
has the messages: the topic was deleted or re-created (a memory broker
restarted, an operator's mistake), or the log was cut (retention, an unclean
leader election). The check uses the Kafka protocol only: the topic's id, and
a fetch of the last recorded offset.
"""

from confluent_kafka import KafkaException

from rotation.kafka.admin import topic_ids
from rotation.kafka.consumer import KafkaUnavailable, LaneConsumer
from rotation.lanes import Lane

# A lane that expects messages but gets none for this long checks its log (so
# does a slice that got none at all before its deadline). A healthy broker
# answers a fetch within milliseconds, and the check costs one metadata request
# and one fetch, so erring early is cheap.
STALL_S = 0.5
# How long the check waits for the last recorded message before calling the
# broker unresponsive (the lane then retries later; nothing is re-published).
PROBE_TIMEOUT_S = 2.0


def log_loss(
    consumer: LaneConsumer, lane: Lane, *, end: int, recorded_topic_id: str
) -> str | None:
    """Return why Kafka no longer holds the lane's messages below `end`, or None
    when it still does. Raise KafkaUnavailable when Kafka does not answer.

    The consumer is left assigned elsewhere; assign it where it should read.
    """
    try:
        current = topic_ids(consumer.bootstrap_servers, [lane.topic])[lane.topic]
    except KafkaException as exc:
        raise KafkaUnavailable(
            f"Kafka at {consumer.bootstrap_servers} did not describe topic "
            f"{lane.topic}: {exc.args[0]}; check the broker"
        ) from exc
    if current is None:
        return f"Kafka no longer has topic {lane.topic}"
    if recorded_topic_id and current != recorded_topic_id:
        return (
            f"topic {lane.topic} was re-created in Kafka (its id was "
            f"{recorded_topic_id}, now {current})"
        )
    held = consumer.probe(lane, end - 1, PROBE_TIMEOUT_S)
    if held is False:
        return f"Kafka no longer holds offset {end - 1} of {lane}"
    if held is None:
        raise KafkaUnavailable(
            f"Kafka at {consumer.bootstrap_servers} sent nothing for lane {lane} "
            f"although PostgreSQL records messages up to offset {end - 1}; the lane "
            "tries again later"
        )
    return None
