"""The topic and group API: create (in Kafka too), read, change, pause, refuse."""

import pytest

from tasks_app.models import ConsumerGroup, Topic, WalkMode
from tasks_app.services.topics import topic_create
from tests.publishing_helpers import partition_count

TOPICS_URL = "/api/topics/"
GROUPS_URL = "/api/groups/"


def test_create_topic_answers_201_and_creates_it_in_kafka(operator_client, topic_name):
    response = operator_client.post(
        TOPICS_URL, {"name": topic_name, "partitions": 2, "weight": 3}, format="json"
    )

    assert response.status_code == 201, response.data
    assert response.data["kafka_error"] == ""
    assert (response.data["partitions"], response.data["weight"]) == (2, 3)
    assert partition_count(topic_name) == 2
    assert partition_count(f"{topic_name}.dlq") == 1


def test_create_topic_twice_is_refused_naming_the_name(operator_client, topic_name):
    topic_create(name=topic_name)

    response = operator_client.post(TOPICS_URL, {"name": topic_name}, format="json")

    assert response.status_code == 409
    assert response.data["detail"] == f"Topic {topic_name!r} already exists."
    assert response.data["field"] == "name"


def test_create_topic_with_an_invalid_name_is_refused_with_the_rule(operator_client):
    response = operator_client.post(TOPICS_URL, {"name": "a/b"}, format="json")

    assert response.status_code == 400
    assert response.data["detail"].startswith("name: Invalid topic name 'a/b'.")


def test_create_topic_with_an_out_of_range_policy_is_refused(
    operator_client, topic_name
):
    response = operator_client.post(
        TOPICS_URL, {"name": topic_name, "slice_ms": 1}, format="json"
    )

    assert response.status_code == 400
    assert response.data["detail"].startswith("slice_ms: ")
    assert not Topic.objects.filter(name=topic_name).exists()


def test_create_topic_with_an_unknown_field_is_refused_naming_it(
    operator_client, topic_name
):
    response = operator_client.post(
        TOPICS_URL, {"name": topic_name, "priority": 5}, format="json"
    )

    assert response.status_code == 400
    assert response.data["detail"].startswith("priority: Unknown field.")


def test_create_topic_with_an_unregistered_handler_is_refused_listing_them(
    operator_client, topic_name
):
    response = operator_client.post(
        TOPICS_URL, {"name": topic_name, "handler": "builtins.eval"}, format="json"
    )

    assert response.status_code == 400
    assert response.data["detail"].startswith(
        "handler: Handler 'builtins.eval' is not registered"
    )
    assert "tasks_app.handlers.log_message" in response.data["detail"]
    assert not Topic.objects.filter(name=topic_name).exists()


def test_setting_an_unregistered_handler_is_refused_and_keeps_the_old_one(
    operator_client, topic_name
):
    topic_create(name=topic_name)

    response = operator_client.patch(
        f"{TOPICS_URL}{topic_name}/", {"handler": "os.getenv"}, format="json"
    )

    assert response.status_code == 400
    assert "'os.getenv' is not registered" in response.data["detail"]
    assert "Registered handlers: " in response.data["detail"]
    assert (
        Topic.objects.get(name=topic_name).handler == "tasks_app.handlers.log_message"
    )


def test_setting_a_registered_handler_by_name_is_accepted(operator_client, topic_name):
    topic_create(name=topic_name)

    response = operator_client.patch(
        f"{TOPICS_URL}{topic_name}/",
        {"handler": "tests.handlers.record"},
        format="json",
    )

    assert response.status_code == 200, response.data
    assert Topic.objects.get(name=topic_name).handler == "tests.handlers.record"


def test_a_topic_with_dots_is_read_by_its_name(operator_client, topic_name):
    dotted = f"{topic_name}.v1.json"
    topic_create(name=dotted)

    response = operator_client.get(f"{TOPICS_URL}{dotted}/")

    assert response.status_code == 200
    assert response.data["name"] == dotted


def test_the_topic_list_includes_created_topics(operator_client, topic_name):
    topic_create(name=topic_name)

    response = operator_client.get(TOPICS_URL, {"page_size": 1000})

    assert topic_name in [t["name"] for t in response.data["results"]]


def test_patch_changes_a_topics_policy(operator_client, topic_name):
    topic_create(name=topic_name)

    response = operator_client.patch(
        f"{TOPICS_URL}{topic_name}/", {"weight": 7, "slice_ms": 500}, format="json"
    )

    assert response.status_code == 200, response.data
    topic = Topic.objects.get(name=topic_name)
    assert (topic.weight, topic.slice_ms) == (7, 500)


def test_put_accepts_the_representation_it_answered(operator_client, topic_name):
    topic_create(name=topic_name)
    current = operator_client.get(f"{TOPICS_URL}{topic_name}/").data

    response = operator_client.put(
        f"{TOPICS_URL}{topic_name}/", {**current, "max_attempts": 9}, format="json"
    )

    assert response.status_code == 200, response.data
    assert Topic.objects.get(name=topic_name).max_attempts == 9


def test_shrinking_partitions_is_refused_saying_why(operator_client, topic_name):
    topic_create(name=topic_name, partitions=2)

    response = operator_client.patch(
        f"{TOPICS_URL}{topic_name}/", {"partitions": 1}, format="json"
    )

    assert response.status_code == 409
    assert "cannot reduce a topic's partitions" in response.data["detail"]


def test_renaming_a_topic_is_refused(operator_client, topic_name):
    topic_create(name=topic_name)

    response = operator_client.patch(
        f"{TOPICS_URL}{topic_name}/", {"name": f"{topic_name}-2"}, format="json"
    )

    assert response.status_code == 409
    assert "cannot be renamed" in response.data["detail"]


def test_pause_and_resume_flip_the_paused_flag(operator_client, topic_name):
    topic_create(name=topic_name)

    paused = operator_client.post(f"{TOPICS_URL}{topic_name}/pause/")
    paused_in_db = Topic.objects.get(name=topic_name).paused
    resumed = operator_client.post(f"{TOPICS_URL}{topic_name}/resume/")

    assert (paused.data["paused"], paused_in_db) == (True, True)
    assert resumed.data["paused"] is False
    assert Topic.objects.get(name=topic_name).paused is False


def test_delete_of_a_topic_answers_405(operator_client, topic_name):
    topic_create(name=topic_name)

    response = operator_client.delete(f"{TOPICS_URL}{topic_name}/")

    assert response.status_code == 405
    assert Topic.objects.filter(name=topic_name).exists()


def test_an_unknown_topic_answers_404_with_a_code(operator_client, topic_name):
    response = operator_client.get(f"{TOPICS_URL}{topic_name}/")

    assert response.status_code == 404
    assert response.data == {
        "detail": "No Topic matches the given query.",
        "code": "not_found",
    }


def test_create_group_over_named_topics(operator_client, topic_name):
    topic_create(name=topic_name)
    body = {
        "group_id": f"g-{topic_name}",
        "topics": [topic_name],
        "walk_mode": "sequential",
    }

    response = operator_client.post(GROUPS_URL, body, format="json")

    assert response.status_code == 201, response.data
    group = ConsumerGroup.objects.get(group_id=f"g-{topic_name}")
    assert [t.name for t in group.topics.all()] == [topic_name]
    assert group.walk_mode == WalkMode.SEQUENTIAL
    assert response.data["topics"] == [topic_name]


def test_create_group_with_an_unknown_topic_is_refused_naming_it(
    operator_client, topic_name
):
    body = {"group_id": f"g-{topic_name}", "topics": [topic_name]}

    response = operator_client.post(GROUPS_URL, body, format="json")

    assert response.status_code == 400
    assert f"Topic '{topic_name}' does not exist" in response.data["detail"]
    assert "POST /api/topics/" in response.data["detail"]


def test_create_group_twice_is_refused(operator_client, topic_name):
    operator_client.post(GROUPS_URL, {"group_id": f"g-{topic_name}"}, format="json")

    response = operator_client.post(
        GROUPS_URL, {"group_id": f"g-{topic_name}"}, format="json"
    )

    assert response.status_code == 409
    assert "already exists" in response.data["detail"]


def test_patch_changes_a_groups_topics_and_walk_mode(operator_client, topic_name):
    topic_create(name=topic_name)
    group_url = f"{GROUPS_URL}g-{topic_name}/"
    operator_client.post(GROUPS_URL, {"group_id": f"g-{topic_name}"}, format="json")

    response = operator_client.patch(
        group_url, {"topics": [topic_name], "walk_mode": "sequential"}, format="json"
    )

    assert response.status_code == 200, response.data
    assert operator_client.get(group_url).data["topics"] == [topic_name]
    assert response.data["walk_mode"] == "sequential"


def test_renaming_a_group_is_refused(operator_client, topic_name):
    operator_client.post(GROUPS_URL, {"group_id": f"g-{topic_name}"}, format="json")

    response = operator_client.patch(
        f"{GROUPS_URL}g-{topic_name}/", {"group_id": "other"}, format="json"
    )

    assert response.status_code == 409
    assert "cannot be renamed" in response.data["detail"]


def test_the_group_list_includes_the_default_group(operator_client, topic_name):
    topic_create(name=topic_name)

    response = operator_client.get(GROUPS_URL)

    groups = {g["group_id"]: g for g in response.data["results"]}
    assert topic_name in groups["default"]["topics"], "new topics join the default"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"paused": 0}, "paused"),
        ({"weight": "7"}, "weight"),
        ({"weight": 7.5}, "weight"),
        ({"rate_limit": True}, "rate_limit"),
        ({"retention_days": False}, "retention_days"),
    ],
)
def test_a_topic_field_of_another_json_type_is_refused(
    operator_client, topic_name, body, field
):
    topic_create(name=topic_name)

    response = operator_client.patch(f"{TOPICS_URL}{topic_name}/", body, format="json")

    assert response.status_code == 400
    assert response.data["field"] == field
    assert Topic.objects.get(name=topic_name).weight == 1


def test_a_groups_topics_must_be_names_not_numbers(operator_client, topic_name):
    topic_create(name="0")

    response = operator_client.post(
        GROUPS_URL, {"group_id": f"g-{topic_name}", "topics": [0]}, format="json"
    )

    assert response.status_code == 400
    assert "array of strings" in response.data["detail"]


def test_a_rate_limit_is_set_cleared_and_checked(operator_client, topic_name):
    topic_create(name=topic_name)
    url = f"{TOPICS_URL}{topic_name}/"

    response = operator_client.patch(
        url, {"rate_limit": 2.5, "rate_burst": 10}, format="json"
    )
    assert response.status_code == 200, response.data
    assert (response.data["rate_limit"], response.data["rate_burst"]) == (2.5, 10)
    refused = operator_client.patch(url, {"rate_limit": 0}, format="json")
    assert refused.status_code == 400
    assert refused.data["field"] == "rate_limit"
    cleared = operator_client.patch(url, {"rate_limit": None}, format="json")
    assert cleared.data["rate_limit"] is None
    assert Topic.objects.get(name=topic_name).rate_limit is None


def test_key_concurrency_is_set_and_checked(operator_client, topic_name):
    topic_create(name=topic_name)
    url = f"{TOPICS_URL}{topic_name}/"

    assert operator_client.get(url).data["key_concurrency"] == 1
    response = operator_client.patch(url, {"key_concurrency": 8}, format="json")
    assert response.status_code == 200, response.data
    assert Topic.objects.get(name=topic_name).key_concurrency == 8
    refused = operator_client.patch(url, {"key_concurrency": 0}, format="json")
    assert refused.status_code == 400
    assert refused.data["field"] == "key_concurrency"


def test_a_retention_is_set_cleared_and_checked(operator_client, topic_name):
    """A topic's own retention in days; empty follows SCHEDULER_RETENTION_DAYS."""
    topic_create(name=topic_name)
    url = f"{TOPICS_URL}{topic_name}/"

    assert operator_client.get(url).data["retention_days"] is None
    response = operator_client.patch(url, {"retention_days": 30}, format="json")
    assert response.status_code == 200, response.data
    assert Topic.objects.get(name=topic_name).retention_days == 30
    refused = operator_client.patch(url, {"retention_days": -1}, format="json")
    assert refused.status_code == 400
    assert refused.data["field"] == "retention_days"
    cleared = operator_client.patch(url, {"retention_days": None}, format="json")
    assert cleared.data["retention_days"] is None
