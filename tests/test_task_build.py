"""Tasks built for a submission are what the database stores, and answering them
in full reads nothing more per task (their topic comes with them). Tasks are
built from their columns without Django's model constructor (its per-field loop
and two signals were the largest cost of storing a list in the web process and
a large one of loading a batch in a worker), and come out the same."""

import pytest
from django.db import connection
from django.db.models.signals import post_init
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


def _constructor_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("built by the model constructor")

    monkeypatch.setattr(Task, "__init__", refuse)


def _attributes(task: Task) -> dict[str, object]:
    fields = {k: v for k, v in vars(task).items() if k != "_state"}
    return {**fields, "adding": task._state.adding, "db": task._state.db}


@pytest.mark.django_db
def test_submitting_and_loading_build_tasks_without_the_constructor(
    topic_name, monkeypatch
):
    _constructor_refused(monkeypatch)

    [submitted] = task_submit_many(
        submitted_by=None, specs=[TaskSpec(topic=topic_name, message={"n": 1})]
    )
    loaded = Task.objects.get(pk=submitted.pk)

    assert loaded.uuid == submitted.uuid
    assert loaded.message == {"n": 1}
    assert not loaded._state.adding
    assert loaded._state.db == "default"


@pytest.mark.django_db
def test_a_loaded_task_is_what_the_constructor_builds(topic_name):
    [submitted] = task_submit_many(
        submitted_by=None, specs=[TaskSpec(topic=topic_name, message=[1, "two"])]
    )
    queryset = Task.objects.filter(pk=submitted.pk)

    lean = queryset.get()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Task, "_built", None)  # any use would fail
        post_init.connect(_noted, sender=Task)
        try:
            constructed = queryset.get()
        finally:
            post_init.disconnect(_noted, sender=Task)

    assert _attributes(lean) == _attributes(constructed)
    assert constructed in _noted_tasks, "a receiver sees every task built"


@pytest.mark.django_db
def test_a_task_loaded_with_deferred_columns_loads_them_when_read(topic_name):
    [submitted] = task_submit_many(
        submitted_by=None, specs=[TaskSpec(topic=topic_name, message={"big": 1})]
    )

    task = Task.objects.defer("message").get(pk=submitted.pk)

    assert "message" not in vars(task)
    assert task.message == {"big": 1}


_noted_tasks: list[Task] = []


def _noted(sender: type, instance: Task, **kwargs: object) -> None:
    _noted_tasks.append(instance)
