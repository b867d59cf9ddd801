"""A topic belongs to exactly one consumer group, from the moment it exists.

A task has one status, so two groups consuming one topic would overwrite each
other's outcomes; and a topic in no group is never consumed.
"""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tasks_app.errors import InvalidInput
from tasks_app.models import ConsumerGroup, Topic
from tasks_app.services.tasks import TaskSpec, task_submit
from tasks_app.services.topics import (
    group_create,
    group_default,
    group_update,
    topic_create,
)


def _groups_of(name: str) -> list[str]:
    return list(
        ConsumerGroup.objects.filter(topics__name=name).values_list(
            "group_id", flat=True
        )
    )


def test_a_topic_created_on_first_use_is_in_the_default_group_before_commit(
    db, topic_name, settings
):
    task_submit(submitted_by=None, spec=TaskSpec(topic=topic_name, message=1))

    # No on-commit hook has run in this test: membership came with the row.
    assert _groups_of(topic_name) == [settings.SCHEDULER_DEFAULT_GROUP]


def test_a_topic_created_through_the_service_is_in_the_default_group(
    transactional_db, topic_name, settings
):
    topic_create(name=topic_name)

    assert _groups_of(topic_name) == [settings.SCHEDULER_DEFAULT_GROUP]


def test_a_new_group_takes_its_topics_out_of_the_default_group(
    transactional_db, topic_name
):
    topic_create(name=topic_name)

    group_create(group_id=f"g-{topic_name}", topic_names=[topic_name])

    assert _groups_of(topic_name) == [f"g-{topic_name}"]


def test_a_topic_of_another_group_is_refused_naming_that_group(
    transactional_db, topic_name
):
    topic_create(name=topic_name)
    group_create(group_id="first", topic_names=[topic_name])

    with pytest.raises(InvalidInput) as refused:
        group_create(group_id="second", topic_names=[topic_name])

    assert "belongs to group 'first'" in refused.value.message
    assert refused.value.field == "topics"
    assert _groups_of(topic_name) == ["first"]
    assert not ConsumerGroup.objects.filter(group_id="second").exists()


def test_a_topic_a_group_gives_up_returns_to_the_default_group(
    transactional_db, topic_name, settings
):
    other = f"{topic_name}-2"
    topic_create(name=topic_name)
    topic_create(name=other)
    group = group_create(group_id="mine", topic_names=[topic_name, other])

    group_update(group=group, topic_names=[other])

    assert _groups_of(topic_name) == [settings.SCHEDULER_DEFAULT_GROUP]
    assert _groups_of(other) == ["mine"]


def test_the_default_group_cannot_drop_a_topic_into_no_group(
    transactional_db, topic_name
):
    topic_create(name=topic_name)

    with pytest.raises(InvalidInput) as refused:
        group_update(group=group_default(), topic_names=[])

    assert "move it to another group" in refused.value.message
    assert _groups_of(topic_name) == ["default"]


BEFORE = ("tasks_app", "0004_lane_careful")
AFTER = ("tasks_app", "0005_one_group_per_topic")


def test_the_migration_keeps_each_topic_in_one_group(transactional_db):
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    apps = executor.loader.project_state([BEFORE]).apps
    old_topic = apps.get_model("tasks_app", "Topic")
    old_group = apps.get_model("tasks_app", "ConsumerGroup")
    both = old_topic.objects.create(name="in-default-and-a")
    twice = old_topic.objects.create(name="in-a-and-b")
    default = old_group.objects.create(group_id="default")
    first = old_group.objects.create(group_id="a")
    second = old_group.objects.create(group_id="b")
    default.topics.add(both)
    first.topics.add(both, twice)
    second.topics.add(twice)

    executor = MigrationExecutor(connection)
    executor.migrate([AFTER])
    executor.loader.build_graph()
    MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())

    assert _groups_of("in-default-and-a") == ["a"]
    assert _groups_of("in-a-and-b") == ["a"]  # the older membership wins
    assert Topic.objects.count() == 2


def test_the_admin_refuses_a_topic_of_another_group_on_the_form(
    admin_client, transactional_db, topic_name
):
    topic = topic_create(name=topic_name)
    group_create(group_id="first", topic_names=[topic_name])

    response = admin_client.post(
        "/admin/tasks_app/consumergroup/add/",
        {"group_id": "second", "walk_mode": "parallel", "topics": [topic.pk]},
    )

    assert response.status_code == 200  # the form again, with the error
    assert "belongs to group &#x27;first&#x27;" in response.content.decode()
    assert _groups_of(topic_name) == ["first"]
