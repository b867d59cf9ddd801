"""Which topics this process has confirmed in Kafka, so it may produce to them.

The broker would otherwise create an unknown topic with its own defaults (or
refuse it); a topic is confirmed by creating it, with its policy, first.
"""

import logging

from tasks_app.models import Topic
from tasks_app.services.topics import topic_sync_kafka

logger = logging.getLogger(__name__)

_ready_topics: set[str] = set()


class TopicsNotReady(Exception):
    """A batch holds topics not yet confirmed in Kafka; it was rolled back."""

    def __init__(self, names: set[str]) -> None:
        super().__init__(", ".join(sorted(names)))
        self.names = names


def topics_check_ready(*, names: set[str]) -> None:
    """Raise TopicsNotReady for the topics this process has not confirmed in Kafka."""
    unready = names - _ready_topics
    if unready:
        raise TopicsNotReady(unready)


def topics_forget() -> None:
    """Confirm every topic in Kafka again before its next batch: after a failed
    batch a topic may be gone (a broker that lost its data)."""
    _ready_topics.clear()


def topics_prepare(*, names: set[str]) -> set[str]:
    """Create the topics in Kafka (retrying earlier failures); return the failures."""
    failures = topic_sync_kafka(topics=Topic.objects.filter(name__in=names))
    _ready_topics.update(names - failures.keys())
    for name, reason in failures.items():
        logger.error(
            "Tasks of topic %s stay pending: its Kafka topic could not be created "
            "(%s). The publisher retries at its next run.",
            name,
            reason,
        )
    return set(failures)
