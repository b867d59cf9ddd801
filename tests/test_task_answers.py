"""Answers of many tasks: every task's link is right, and the route is reversed
once per answer, not once per task (it was a third of a full list's answer)."""

from unittest import mock

import pytest
from django.urls import reverse
from rest_framework import reverse as drf_reverse

TASKS_URL = "/api/tasks/"


def _expected_link(task_id: str, query: str = "") -> str:
    return f"http://testserver{reverse('task-detail', kwargs={'id': task_id})}{query}"


@pytest.fixture
def reverse_calls():
    """Count the route reversals DRF makes (the real function still answers)."""
    with mock.patch.object(
        drf_reverse, "django_reverse", wraps=drf_reverse.django_reverse
    ) as spy:
        yield spy


def test_a_full_list_answer_links_each_task_reversing_the_route_once(
    submitter_client, topic_name, reverse_calls
):
    body = [{"topic": topic_name, "message": n} for n in range(5)]

    response = submitter_client.post(TASKS_URL, body, format="json")

    assert response.status_code == 201, response.data
    assert [task["url"] for task in response.data] == [
        _expected_link(task["id"]) for task in response.data
    ]
    assert reverse_calls.call_count == 1


def test_a_listed_page_keeps_the_format_override_in_each_link(
    submitter_client, topic_name
):
    body = [{"topic": topic_name, "message": n} for n in range(3)]
    submitter_client.post(TASKS_URL, body, format="json")

    page = submitter_client.get(TASKS_URL, {"topic": topic_name, "format": "json"})

    assert page.status_code == 200, page.content
    links = [task["url"] for task in page.json()["results"]]
    assert len(links) == 3
    assert links == [
        _expected_link(task["id"], "?format=json") for task in page.json()["results"]
    ]
