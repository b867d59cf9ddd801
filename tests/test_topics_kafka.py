"""Topics follow their rows into Kafka: creation, partition growth, resume."""

import os

import pytest
from confluent_kafka.admin import AdminClient

from rotation.kafka.admin import grow_partitions
from tasks_app.errors import Conflict
from tasks_app.models import Topic
from tasks_app.services.topics import topic_create, topic_update

pytestmark = pytest.mark.django_db(transaction=True)


def _partitions(name: str) -> int:
    admin = AdminClient({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]})
    return len(admin.list_topics(name, timeout=10).topics[name].partitions)


def test_topic_with_partitions_is_created_with_them_and_no_error(topic_name):
    topic = topic_create(name=topic_name, partitions=3)
    assert topic.kafka_error == ""
    assert _partitions(topic_name) == 3


def test_growing_partitions_asks_kafka_first_and_gives_its_answer(topic_name):
    """The publisher places messages by the count PostgreSQL records, so that
    count grows only once Kafka has the partitions."""
    topic = topic_create(name=topic_name, partitions=1)
    refused = None
    try:
        topic = topic_update(topic=topic, partitions=2)
    except Conflict as exc:  # a broker without CreatePartitions says no
        refused = exc

    if refused is not None:
        assert "CreatePartitions" in refused.message
    assert Topic.objects.get(pk=topic.pk).partitions == _partitions(topic_name)
    assert _partitions(topic_name) == (1 if refused else 2)


def test_no_growth_needed_asks_kafka_nothing(topic_name):
    topic_create(name=topic_name, partitions=2)
    assert grow_partitions(os.environ["KAFKA_BOOTSTRAP_SERVERS"], {topic_name: 2}) == {}


def test_growing_partitions_while_kafka_is_down_answers_503_and_changes_nothing(
    topic_name, settings
):
    from scheduler_site.devstack.process import free_port
    from tasks_app.errors import ServiceUnavailable

    topic = topic_create(name=topic_name, partitions=1)
    settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{free_port()}"

    with pytest.raises(ServiceUnavailable) as refused:
        topic_update(topic=topic, partitions=2)

    assert refused.value.context["service"] == "kafka"
    assert "keeps 1" in refused.value.message
    assert Topic.objects.get(pk=topic.pk).partitions == 1
