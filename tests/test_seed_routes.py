"""The Rust seed's routes: POST /tasks/generate answers "Success"; GET /tasks lists."""

import pytest

from tasks_app.models import Task, TaskStatus
from tasks_app.services.tasks import TaskSpec, task_cancel, task_submit


@pytest.mark.parametrize("url", ["/tasks/generate", "/tasks/generate/"])
def test_generate_answers_success_and_stores_the_task(
    submitter_client, topic_name, url
):
    response = submitter_client.post(
        url, {"topic": topic_name, "message": "EE"}, format="json"
    )

    assert response.status_code == 200
    assert response.content == b'"Success"'
    task = Task.objects.get(topic__name=topic_name)
    assert (task.message, task.status) == ("EE", TaskStatus.PENDING)


@pytest.mark.parametrize("url", ["/tasks", "/tasks/"])
def test_list_answers_pending_tasks_oldest_first_as_topic_and_message(
    submitter_client, topic_name, url
):
    for message in ["first", {"n": 2}, "third"]:
        submitter_client.post(
            "/tasks/generate", {"topic": topic_name, "message": message}, format="json"
        )

    response = submitter_client.get(url)

    assert response.status_code == 200
    assert response.json() == [
        {"topic": topic_name, "message": "first"},
        {"topic": topic_name, "message": {"n": 2}},
        {"topic": topic_name, "message": "third"},
    ]


@pytest.mark.django_db(transaction=True)
def test_list_omits_published_and_cancelled_tasks(
    submitter, submitter_client, topic_name
):
    from tests.publishing_helpers import publish_pending

    def submit(message: str) -> Task:
        return task_submit(
            submitted_by=submitter, spec=TaskSpec(topic=topic_name, message=message)
        )

    published = submit("published")
    publish_pending()
    submit("waiting")
    task_cancel(task_id=submit("cancelled").uuid)
    assert Task.objects.get(pk=published.pk).status == TaskStatus.PUBLISHED

    response = submitter_client.get("/tasks")

    assert response.json() == [{"topic": topic_name, "message": "waiting"}]


def test_generate_with_an_invalid_topic_is_refused_with_the_rule(submitter_client):
    response = submitter_client.post(
        "/tasks/generate", {"topic": "no spaces", "message": "m"}, format="json"
    )

    assert response.status_code == 400
    assert "1 to 249 characters" in response.json()["detail"]


def test_generate_with_a_field_the_seed_did_not_have_is_refused(
    submitter_client, topic_name
):
    response = submitter_client.post(
        "/tasks/generate",
        {"topic": topic_name, "message": "m", "key": "k"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["detail"].startswith("key: Unknown field.")


def test_generate_for_a_missing_topic_says_how_to_create_it_when_auto_create_is_off(
    submitter_client, topic_name, settings
):
    settings.SCHEDULER_AUTO_CREATE_TOPICS = False

    response = submitter_client.post(
        "/tasks/generate", {"topic": topic_name, "message": "m"}, format="json"
    )

    assert response.status_code == 400
    assert "automatic topic creation is off" in response.json()["detail"]
    assert not Task.objects.exists()
