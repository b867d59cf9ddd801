"""Tasks built for a submission are what the database stores, and answering them
in full reads nothing more per task (their topic comes with them)."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks_app.models import Task
from tasks_app.services.tasks import TaskSpec, task_submit_many

TASKS_URL = "/api/tasks/"


def _columns(task: Task) -> dict:
    return {
        field.attname: getattr(task, field.attname)
        for field in Task._meta.concrete_fields
        if not field.generated
    }


def test_submitted_tasks_hold_every_column_as_stored(submitter, topic_name):
    specs = [
        TaskSpec(topic=topic_name, message={"n": 1}),
        TaskSpec(topic=topic_name, message=[2], key="k", idempotency_key="i-2"),
    ]

    built = task_submit_many(submitted_by=submitter, specs=specs)

    stored = {task.pk: task for task in Task.objects.filter(topic__name=topic_name)}
    assert [_columns(task) for task in built] == [
        _columns(stored[task.pk]) for task in built
    ]


def _queries_to_answer(client, topic: str, count: int) -> int:
    body = [{"topic": topic, "message": n} for n in range(count)]
    with CaptureQueriesContext(connection) as queries:
        response = client.post(TASKS_URL, body, format="json")
    assert response.status_code == 201, response.data
    assert all(task["topic"] == topic for task in response.data)
    return len(queries)


def test_a_full_answer_reads_nothing_per_task(submitter_client, topic_name):
    _queries_to_answer(submitter_client, topic_name, 1)  # creates the topic

    assert _queries_to_answer(submitter_client, topic_name, 2) == _queries_to_answer(
        submitter_client, topic_name, 20
    )


def test_only_the_uuid_default_is_computed_per_task():
    """New tasks start from the defaults computed once (services/tasks.py): a
    field whose default is computed per row must be set by `_new_task` too."""
    computed = {
        f.name
        for f in Task._meta.concrete_fields
        if f.has_default() and callable(f.default)
    }

    assert computed == {"uuid"}
