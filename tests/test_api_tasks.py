"""The task API: submit one or many, idempotency, list, read, cancel and retry."""

import base64
import json
import uuid

import pytest

from tasks_app.models import OutboxEntry, Task, TaskStatus
from tasks_app.services.tasks import TaskSpec, task_submit

TASKS_URL = "/api/tasks/"


def _post(client, body, **headers):
    return client.post(TASKS_URL, body, format="json", **headers)


def _submit(owner, topic: str, message="m", **extra) -> Task:
    return task_submit(
        submitted_by=owner, spec=TaskSpec(topic=topic, message=message, **extra)
    )


def _mark(task: Task, status: str) -> None:
    """Move a task past the outbox as the publisher/worker would have."""
    OutboxEntry.objects.filter(task=task).delete()
    Task.objects.filter(pk=task.pk).update(status=status)


def test_create_one_task_answers_201_with_the_stored_task(submitter_client, topic_name):
    response = _post(submitter_client, {"topic": topic_name, "message": {"n": 1}})

    assert response.status_code == 201, response.data
    task = Task.objects.get(uuid=response.data["id"])
    assert task.message == {"n": 1}
    assert response.data["topic"] == topic_name
    assert response.data["key"] == topic_name, "the key defaults to the topic"
    assert response.data["status"] == "pending"
    assert response.data["url"].endswith(f"/api/tasks/{task.uuid}/")


def test_create_a_list_stores_every_task_in_order(submitter_client, topic_name):
    body = [{"topic": topic_name, "message": n} for n in range(5)]

    response = _post(submitter_client, body)

    assert response.status_code == 201, response.data
    ids = [item["id"] for item in response.data]
    stored = Task.objects.filter(uuid__in=ids).order_by("id")
    assert [str(t.uuid) for t in stored] == ids
    assert [t.message for t in stored] == [0, 1, 2, 3, 4]


def test_a_list_stores_each_tasks_outbox_entry_and_first_event(
    submitter, submitter_client, topic_name
):
    other = f"{topic_name}-b"
    body = [
        {"topic": topic_name, "message": {"n": 0}},
        {"topic": other, "message": [1, "two"], "key": "k"},
        {"topic": topic_name, "message": "three", "idempotency_key": "i-3"},
    ]

    response = _post(submitter_client, body)

    assert response.status_code == 201, response.data
    tasks = list(Task.objects.filter(uuid__in=[i["id"] for i in response.data]))
    assert [str(t.uuid) for t in sorted(tasks, key=lambda t: t.pk)] == [
        i["id"] for i in response.data
    ], "ids follow the list"
    for task in tasks:
        assert task.submitted_by == submitter
        entry = OutboxEntry.objects.get(task=task)
        envelope = json.loads(entry.envelope)
        assert (entry.topic_name, entry.key) == (task.topic.name, task.key)
        assert envelope["task_id"] == str(task.uuid)
        assert envelope["message"] == task.message
        assert entry.available_at == task.created_at
        assert [(e.status, e.at) for e in task.events.all()] == [
            ("pending", task.created_at)
        ]
    assert Task.objects.get(idempotency_key="i-3").request_hash


def test_prefer_return_minimal_answers_only_ids_and_statuses(
    submitter_client, topic_name
):
    body = [{"topic": topic_name, "message": n} for n in range(3)]

    response = _post(submitter_client, body, HTTP_PREFER="return=minimal")

    assert response.status_code == 201, response.data
    assert response["Preference-Applied"] == "return=minimal"
    assert "Prefer" in response["Vary"]
    stored = Task.objects.filter(topic__name=topic_name).order_by("id")
    assert response.json() == [{"id": str(t.uuid), "status": "pending"} for t in stored]


def test_prefer_return_minimal_applies_to_one_task_and_to_a_repeat(
    submitter_client, topic_name
):
    body = {"topic": topic_name, "message": "m", "idempotency_key": "once"}

    first = _post(submitter_client, body, HTTP_PREFER="respond-async, return=minimal")
    again = _post(submitter_client, body, HTTP_PREFER="return=minimal")

    assert (first.status_code, again.status_code) == (201, 200)
    assert (
        first.json() == again.json() == {"id": first.json()["id"], "status": "pending"}
    )


def test_prefer_return_representation_or_nothing_answers_the_full_task(
    submitter_client, topic_name
):
    for prefer in ({"HTTP_PREFER": "return=representation"}, {}):
        response = _post(
            submitter_client, {"topic": topic_name, "message": 1}, **prefer
        )

        assert response.status_code == 201
        assert "Preference-Applied" not in response
        assert response.json()["url"].endswith(f"/api/tasks/{response.json()['id']}/")


def test_a_list_over_the_bulk_limit_is_refused_naming_the_limit(
    submitter_client, topic_name, settings
):
    settings.SCHEDULER_MAX_BULK_TASKS = 3
    body = [{"topic": topic_name, "message": n} for n in range(4)]

    response = _post(submitter_client, body)

    assert response.status_code == 400
    assert "at most 3 tasks" in response.data["detail"]
    assert "SCHEDULER_MAX_BULK_TASKS" in response.data["detail"]
    assert not Task.objects.filter(topic__name=topic_name).exists()


def test_an_empty_list_is_refused(submitter_client):
    response = _post(submitter_client, [])

    assert response.status_code == 400
    assert "at least one task" in response.data["detail"]


def test_a_bad_item_in_a_list_is_named_by_its_position(submitter_client, topic_name):
    body = [{"topic": topic_name, "message": 1}, {"topic": "bad name", "message": 2}]

    response = _post(submitter_client, body)

    assert response.status_code == 400
    assert response.data["detail"].startswith("[1].topic: Invalid topic name")
    assert not Task.objects.filter(topic__name=topic_name).exists(), "all or none"


def test_a_repeated_idempotency_key_with_the_same_body_returns_the_task_with_200(
    submitter_client, topic_name
):
    body = {"topic": topic_name, "message": "m", "idempotency_key": "order-1"}
    first = _post(submitter_client, body)

    again = _post(submitter_client, body)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.data["id"] == first.data["id"]
    assert Task.objects.filter(topic__name=topic_name).count() == 1


def test_an_idempotency_key_reused_with_another_body_is_refused_naming_it(
    submitter_client, topic_name
):
    _post(
        submitter_client, {"topic": topic_name, "message": "a", "idempotency_key": "k1"}
    )

    response = _post(
        submitter_client, {"topic": topic_name, "message": "b", "idempotency_key": "k1"}
    )

    assert response.status_code == 409
    assert response.data["field"] == "idempotency_key"
    assert "'k1' was already used with a different body" in response.data["detail"]


def test_the_idempotency_key_header_works_like_the_body_field(
    submitter_client, topic_name
):
    body = {"topic": topic_name, "message": "m"}
    first = _post(submitter_client, body, HTTP_IDEMPOTENCY_KEY="hdr-1")

    by_field = _post(submitter_client, {**body, "idempotency_key": "hdr-1"})

    assert first.data["idempotency_key"] == "hdr-1"
    assert (by_field.status_code, by_field.data["id"]) == (200, first.data["id"])


def test_an_idempotency_header_that_disagrees_with_the_body_is_refused(
    submitter_client, topic_name
):
    body = {"topic": topic_name, "message": "m", "idempotency_key": "a"}

    response = _post(submitter_client, body, HTTP_IDEMPOTENCY_KEY="b")

    assert response.status_code == 400
    assert response.data["detail"].startswith("Idempotency-Key: The header and")


def test_an_idempotency_header_on_a_list_is_refused(submitter_client, topic_name):
    body = [{"topic": topic_name, "message": "m"}]

    response = _post(submitter_client, body, HTTP_IDEMPOTENCY_KEY="k")

    assert response.status_code == 400
    assert "its own idempotency_key field" in response.data["detail"]


def test_an_unknown_topic_is_refused_with_how_to_create_it_when_auto_create_is_off(
    submitter_client, topic_name, settings
):
    settings.SCHEDULER_AUTO_CREATE_TOPICS = False

    response = _post(submitter_client, {"topic": topic_name, "message": "m"})

    assert response.status_code == 400
    assert "POST /api/topics/" in response.data["detail"]
    assert response.data["field"] == "topic"


def test_the_list_filters_by_status_topic_and_key(
    submitter, submitter_client, topic_name
):
    other = f"{topic_name}-other"
    wanted = _submit(submitter, topic_name, key="k1")
    _submit(submitter, topic_name, key="k2")
    _submit(submitter, other, key="k1")
    _mark(_submit(submitter, topic_name, key="k1"), TaskStatus.PUBLISHED)

    response = submitter_client.get(
        TASKS_URL, {"status": "pending", "topic": topic_name, "key": "k1"}
    )

    assert response.status_code == 200
    assert [t["id"] for t in response.data["results"]] == [str(wanted.uuid)]


def test_an_unknown_status_filter_is_refused_listing_the_valid_ones(submitter_client):
    response = submitter_client.get(TASKS_URL, {"status": "done"})

    assert response.status_code == 400
    assert "Unknown status 'done'" in response.data["detail"]
    assert "pending, published, running" in response.data["detail"]


def test_the_list_is_newest_first_unless_ordered_oldest_first(
    submitter, submitter_client, topic_name
):
    tasks = [_submit(submitter, topic_name, message=n) for n in range(3)]
    ids = [str(t.uuid) for t in tasks]

    newest = submitter_client.get(TASKS_URL, {"topic": topic_name})
    oldest = submitter_client.get(
        TASKS_URL, {"topic": topic_name, "ordering": "created_at"}
    )

    assert [t["id"] for t in newest.data["results"]] == ids[::-1]
    assert [t["id"] for t in oldest.data["results"]] == ids


def test_an_unknown_ordering_is_refused_naming_the_choices(submitter_client):
    response = submitter_client.get(TASKS_URL, {"ordering": "status"})

    assert response.status_code == 400
    assert "Unknown ordering 'status'" in response.data["detail"]
    assert "-created_at" in response.data["detail"]


def test_the_list_pages_with_a_cursor(submitter, submitter_client, topic_name):
    ids = [str(_submit(submitter, topic_name, message=n).uuid) for n in range(5)]
    query = {"topic": topic_name, "ordering": "id", "page_size": 2}

    seen, url = [], None
    for _ in range(3):
        response = submitter_client.get(url or TASKS_URL, None if url else query)
        seen += [t["id"] for t in response.data["results"]]
        url = response.data["next"]

    assert seen == ids
    assert url is None


def test_retrieve_answers_the_task_with_its_history(
    submitter, submitter_client, topic_name
):
    task = _submit(submitter, topic_name)

    response = submitter_client.get(f"{TASKS_URL}{task.uuid}/")

    assert response.status_code == 200
    assert response.data["id"] == str(task.uuid)
    assert [e["status"] for e in response.data["events"]] == ["pending"]


@pytest.mark.parametrize("task_id", [uuid.uuid4(), "not-a-uuid"])
def test_retrieve_of_an_unknown_id_answers_404(submitter_client, task_id):
    response = submitter_client.get(f"{TASKS_URL}{task_id}/")

    assert response.status_code == 404
    assert response.data["detail"] == f"No task with id {task_id}."


def test_cancel_of_a_pending_task_cancels_it(submitter, submitter_client, topic_name):
    task = _submit(submitter, topic_name)

    response = submitter_client.post(f"{TASKS_URL}{task.uuid}/cancel/")

    assert response.status_code == 200
    assert response.data["status"] == "cancelled"
    assert not OutboxEntry.objects.filter(task=task).exists(), "never published"


def test_cancel_of_a_published_task_answers_409_with_the_reason(
    submitter, submitter_client, topic_name
):
    task = _submit(submitter, topic_name)
    _mark(task, TaskStatus.PUBLISHED)

    response = submitter_client.post(f"{TASKS_URL}{task.uuid}/cancel/")

    assert response.status_code == 409
    assert (
        "is published; only pending tasks can be cancelled" in response.data["detail"]
    )


def test_retry_of_a_dead_task_queues_it_again(submitter, submitter_client, topic_name):
    task = _submit(submitter, topic_name)
    _mark(task, TaskStatus.DEAD)

    response = submitter_client.post(f"{TASKS_URL}{task.uuid}/retry/")

    assert response.status_code == 200
    assert response.data["status"] == "pending"
    assert OutboxEntry.objects.filter(task=task).exists()


def test_retry_of_a_pending_task_answers_409_with_the_reason(
    submitter, submitter_client, topic_name
):
    task = _submit(submitter, topic_name)

    response = submitter_client.post(f"{TASKS_URL}{task.uuid}/retry/")

    assert response.status_code == 409
    assert "only dead tasks can be retried" in response.data["detail"]


def _cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        _cursor("o=0&r=0&p=abc"),
        _cursor("o=0&r=0&p=99999999999999999999999"),
        _cursor("o=x&r=0"),
        "not base64 at all",
    ],
)
def test_a_tampered_cursor_is_a_400_naming_the_cursor(submitter_client, cursor):
    response = submitter_client.get(TASKS_URL, {"cursor": cursor})

    assert response.status_code == 400
    assert response.json()["field"] == "cursor"
    assert "cursor" in response.json()["detail"]


@pytest.mark.parametrize("page_size", ["0", "-1", "1001", "abc", ""])
def test_a_page_size_out_of_range_is_a_400_naming_the_range(
    submitter_client, page_size
):
    response = submitter_client.get(TASKS_URL, {"page_size": page_size})

    assert response.status_code == 400
    assert response.json()["field"] == "page_size"
    assert "from 1 to 1000" in response.json()["detail"]


@pytest.mark.parametrize("query", ["topic=", "key=", "status="])
def test_an_empty_filter_is_a_400_not_ignored(submitter_client, query):
    response = submitter_client.get(f"{TASKS_URL}?{query}")

    assert response.status_code == 400
    assert response.json()["field"] == query.rstrip("=")


@pytest.mark.django_db(transaction=True)
def test_a_repeat_racing_its_original_answers_200_not_201(
    submitter, submitter_client, topic_name
):
    """The original is still uncommitted when the repeat arrives: only the
    service, after the topic lock, can tell that the repeat is one."""
    import threading

    from django.db import connection, transaction

    from tests.cluster import wait_for
    from tests.db_catalog import waiting_for_a_lock

    spec = TaskSpec(topic=topic_name, message={"n": 1}, idempotency_key="k-1")
    task_submit(submitted_by=submitter, spec=TaskSpec(topic=topic_name, message=0))
    in_transaction, release = threading.Event(), threading.Event()
    answers = []

    def original() -> None:
        try:
            with transaction.atomic():
                task_submit(submitted_by=submitter, spec=spec)
                in_transaction.set()
                release.wait(30)
        finally:
            connection.close()

    def repeat() -> None:
        try:
            body = {"topic": topic_name, "message": {"n": 1}, "idempotency_key": "k-1"}
            answers.append(_post(submitter_client, body))
        finally:
            connection.close()

    threads = [threading.Thread(target=original), threading.Thread(target=repeat)]
    threads[0].start()
    assert in_transaction.wait(30)
    threads[1].start()
    wait_for(waiting_for_a_lock, timeout_s=30, what="the repeat to wait")
    release.set()
    for thread in threads:
        thread.join(30)

    assert [answer.status_code for answer in answers] == [200]
    assert Task.objects.filter(idempotency_key="k-1").count() == 1


@pytest.mark.django_db(transaction=True)
def test_system_tasks_racing_with_one_idempotency_key_store_one_task(topic_name):
    """Ownerless (system) tasks share one idempotency namespace: the database's
    unique index treats the empty owner as a value, so a racing second use of a
    key on another topic waits for the first and is refused, not stored twice."""
    import threading

    from django.db import connection, transaction

    from tasks_app.errors import Conflict

    for topic in (topic_name, f"{topic_name}-b"):  # existing topics: no shared lock
        task_submit(submitted_by=None, spec=TaskSpec(topic=topic, message=0))
    in_transaction, release = threading.Event(), threading.Event()
    outcomes: list[object] = []

    def first() -> None:
        try:
            with transaction.atomic():
                spec = TaskSpec(topic=topic_name, message=1, idempotency_key="sys-1")
                task_submit(submitted_by=None, spec=spec)
                in_transaction.set()
                release.wait(30)
        finally:
            connection.close()

    def second() -> None:
        try:
            spec = TaskSpec(topic=f"{topic_name}-b", message=2, idempotency_key="sys-1")
            outcomes.append(task_submit(submitted_by=None, spec=spec))
        except Conflict as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert in_transaction.wait(30)
    threads[1].start()
    threads[1].join(2)  # with the fix it waits on the first's uncommitted row
    release.set()
    for thread in threads:
        thread.join(30)

    assert Task.objects.filter(idempotency_key="sys-1").count() == 1
    assert isinstance(outcomes[0], Conflict)
