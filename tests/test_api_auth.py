"""Who may call what: tokens and sessions, open docs and health, per-user limits."""

import logging

import pytest
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle

from scheduler_site.devstack.process import free_port
from tasks_app.models import Task
from tasks_app.roles import Role
from tasks_app.services.tasks import TaskSpec, task_submit
from tasks_app.services.topics import group_default
from tests.factories import UserFactory


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/tasks/"),
        ("post", "/api/tasks/"),
        ("get", "/api/topics/"),
        ("post", "/api/topics/"),
        ("get", "/api/groups/"),
        ("get", "/api/"),
        ("get", "/tasks"),
        ("post", "/tasks/generate"),
    ],
)
def test_anonymous_requests_are_refused(anon_client, db, method, url):
    response = getattr(anon_client, method)(url, {"topic": "a", "message": "m"})

    assert response.status_code == 401
    assert response.data["detail"] == "Authentication credentials were not provided."


def test_anonymous_post_stores_nothing(anon_client, db, topic_name):
    anon_client.post("/tasks/generate", {"topic": topic_name, "message": "m"})

    assert not Task.objects.exists()


def test_a_wrong_token_is_refused(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = client.get("/api/tasks/")

    assert response.status_code == 401
    assert response.data["detail"] == "Invalid token."


@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/"])
def test_the_schema_and_docs_are_open_to_anonymous_callers(anon_client, db, url):
    assert anon_client.get(url).status_code == 200


def test_the_schema_lists_the_task_routes(anon_client, db):
    response = anon_client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert "/api/tasks/{id}/cancel/" in response.json()["paths"]


@pytest.mark.parametrize(
    "url",
    [
        "/api/",
        "/api/tasks/",
        "/api/tasks/{task}/",
        "/api/topics/",
        "/api/topics/{topic}/",
        "/api/groups/",
        "/api/groups/default/",
        "/tasks",
    ],
)
def test_a_session_user_browses_the_api_as_html(operator, topic_name, url):
    task = task_submit(submitted_by=None, spec=TaskSpec(topic=topic_name, message=1))
    group_default()
    client = APIClient()
    client.force_login(operator)

    response = client.get(
        url.format(task=task.uuid, topic=topic_name), HTTP_ACCEPT="text/html"
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"Django REST framework" in response.content


def test_the_browsable_api_login_page_logs_a_user_in(operator):
    client = APIClient(enforce_csrf_checks=False)

    client.post(
        "/api/auth/login/",
        {"username": operator.username, "password": "pw-for-tests-1"},
    )

    assert client.get("/api/topics/", HTTP_ACCEPT="text/html").status_code == 200


def test_requests_over_the_users_rate_answer_429_saying_when_to_retry(
    operator_client, monkeypatch
):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/minute"})

    statuses = [operator_client.get("/api/topics/").status_code for _ in range(4)]
    response = operator_client.get("/api/topics/")

    assert statuses == [200, 200, 200, 429]
    assert response.status_code == 429
    assert response.data["detail"].startswith("Too many requests from this account.")
    assert f"Retry in {response['Retry-After']} seconds" in response.data["detail"]


def test_the_rate_limit_counts_each_user_separately(operator_client, monkeypatch):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "1/minute"})
    other = APIClient()
    other.force_authenticate(user=UserFactory(role=Role.OPERATOR))

    first = operator_client.get("/api/topics/").status_code
    second = other.get("/api/topics/").status_code

    assert (first, second) == (200, 200)


def test_tasks_are_accepted_while_redis_is_down_and_the_limit_is_kept_locally(
    submitter_client, settings, monkeypatch, caplog, topic_name
):
    """PostgreSQL alone accepts work: a lost Redis costs only the shared counts."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/minute"})
    body = {"topic": topic_name, "message": {"n": 1}}

    with caplog.at_level(logging.WARNING):
        statuses = [
            submitter_client.post("/api/tasks/", body, format="json").status_code
            for _ in range(4)
        ]

    assert statuses == [201, 201, 201, 429]
    lines = [r.getMessage() for r in caplog.records if "Redis" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "counts requests in this process" in lines[0]
