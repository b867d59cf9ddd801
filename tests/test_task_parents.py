"""A task's topic, owner and schedule: checked once per statement, not per row,
with the guarantees a foreign key gives (migration 0024)."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, NotSupportedError, connection, transaction
from django_celery_beat.models import IntervalSchedule

from tasks_app.models import GroupTopic, Schedule, Task, TaskCount, Topic
from tasks_app.services.schedules import schedule_create
from tasks_app.services.tasks import TaskSpec, task_submit_many
from tests.cluster import wait_for
from tests.db_catalog import trigger_functions, waiting_for_a_lock
from tests.publishing_helpers import in_thread

pytestmark = pytest.mark.django_db(transaction=True)

# A parent id no row has (ids start at 1 and these tests create few rows).
MISSING_ID = 2_000_000_000
WAIT_S = 10.0


def _sql(statement: str, params: list[Any] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _copy_task(task: Task, column: str, value: int | None) -> None:
    """Insert a copy of `task` (new public id) with `column` set to `value`."""
    names = [
        field.column
        for field in Task._meta.concrete_fields
        if not field.primary_key and not field.generated
    ]
    given = {"uuid": uuid.uuid4(), column: value}
    quoted = [connection.ops.quote_name(name) for name in names]
    picks = ", ".join(
        "%s" if n in given else q for n, q in zip(names, quoted, strict=True)
    )
    _sql(
        f"INSERT INTO {Task._meta.db_table} ({', '.join(quoted)}) "
        f"SELECT {picks} FROM {Task._meta.db_table} WHERE id = %s",
        [given[name] for name in names if name in given] + [task.pk],
    )


@pytest.fixture
def owner() -> User:
    """A user with nothing but tasks pointing at them (no group, no token)."""
    return User.objects.create_user(f"owner-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def task(owner, topic_name) -> Task:
    return task_submit_many(
        submitted_by=owner, specs=[TaskSpec(topic=topic_name, message=1)]
    )[0]


@pytest.fixture
def schedule(task) -> Schedule:
    every = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    return schedule_create(
        name=f"s-{uuid.uuid4().hex[:6]}", topic=task.topic, message=1, interval=every
    )


def test_the_task_table_checks_no_parent_row_by_row():
    """A foreign key checks each inserted task's topic and owner with a query of
    its own at commit: 2,000 queries for a POST of 1,000 tasks, a tenth of the
    POST's time (docs/benchmarks.md)."""
    assert "RI_FKey_check_ins" not in trigger_functions(Task)


@pytest.mark.parametrize("column", ["topic_id", "submitted_by_id", "schedule_id"])
def test_a_task_naming_a_missing_parent_is_refused(task, column):
    with pytest.raises(
        IntegrityError, match=rf"Key \({column}\)=\({MISSING_ID}\) is not present"
    ):
        _copy_task(task, column, MISSING_ID)


@pytest.mark.parametrize("column", ["topic_id", "submitted_by_id", "schedule_id"])
def test_a_task_moved_to_a_missing_parent_is_refused(task, column):
    with pytest.raises(
        IntegrityError, match=rf"Key \({column}\)=\({MISSING_ID}\) is not present"
    ):
        _sql(
            f"UPDATE {Task._meta.db_table} SET {column} = %s WHERE id = %s",
            [MISSING_ID, task.pk],
        )


def test_tasks_naming_existing_parents_and_none_are_stored(task, schedule):
    _copy_task(task, "schedule_id", schedule.pk)
    _copy_task(task, "submitted_by_id", None)

    assert Task.objects.filter(topic=task.topic).count() == 3


def _delete_topic_in_sql(topic_id: int) -> None:
    """Delete a topic row and what else names it, except its tasks, in SQL."""
    TaskCount.objects.filter(topic_id=topic_id).delete()
    GroupTopic.objects.filter(topic_id=topic_id).delete()
    _sql(f"DELETE FROM {Topic._meta.db_table} WHERE id = %s", [topic_id])


def test_a_topic_with_tasks_cannot_be_deleted(task):
    refused = pytest.raises(IntegrityError, match="is still referenced from table")
    with refused, transaction.atomic():
        _delete_topic_in_sql(task.topic_id)

    assert Topic.objects.filter(pk=task.topic_id).exists()


def test_deleting_an_owner_in_sql_leaves_their_tasks_without_one(task, owner):
    _sql("DELETE FROM auth_user WHERE id = %s", [owner.pk])

    task.refresh_from_db()
    assert task.submitted_by_id is None


def test_deleting_a_schedule_in_sql_leaves_its_runs_without_one(task, schedule):
    _copy_task(task, "schedule_id", schedule.pk)

    _sql(f"DELETE FROM {Schedule._meta.db_table} WHERE id = %s", [schedule.pk])

    assert not Task.objects.filter(schedule_id=schedule.pk).exists()


def test_deleting_an_owner_under_a_longer_snapshot_is_refused(task, owner):
    """Under REPEATABLE READ the trigger's statements would not see tasks stored
    after the transaction began, and could leave them naming a deleted user."""
    refused = pytest.raises(NotSupportedError, match="under READ COMMITTED")
    with refused, transaction.atomic():
        _sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        _sql("DELETE FROM auth_user WHERE id = %s", [owner.pk])

    assert User.objects.filter(pk=owner.pk).exists()


def _wait_until_blocked(statement_start: str) -> None:
    wait_for(
        lambda: waiting_for_a_lock(statement_start),
        timeout_s=WAIT_S,
        what=f"a {statement_start!r} to wait for a lock",
    )


def test_an_owner_deleted_while_their_tasks_are_stored_leaves_no_orphan(
    owner, topic_name
):
    """The store locks the owner's row as a foreign key's check would: the
    delete waits for the commit, then sees the new tasks and clears their owner."""
    delete = "DELETE FROM auth_user WHERE id = "
    with ThreadPoolExecutor(1) as pool, transaction.atomic():
        tasks = task_submit_many(
            submitted_by=owner,
            specs=[TaskSpec(topic=topic_name, message=n) for n in range(3)],
        )
        deleting = pool.submit(in_thread(_sql, f"{delete}%s", [owner.pk]))
        _wait_until_blocked(delete)

    assert deleting.exception(WAIT_S) is None
    assert not User.objects.filter(pk=owner.pk).exists()
    stored = Task.objects.filter(pk__in=[t.pk for t in tasks])
    assert [t.submitted_by_id for t in stored] == [None, None, None]


def test_a_task_stored_while_its_owner_is_deleted_waits_then_is_refused(task, owner):
    """The store waits for the delete's commit, then finds the owner gone: it
    locks before it looks, or it would store a task naming a deleted user."""
    insert = f"INSERT INTO {Task._meta.db_table} "

    deleted = threading.Event()

    def delete_owner() -> None:
        with transaction.atomic():
            _sql("DELETE FROM auth_user WHERE id = %s", [owner.pk])
            deleted.set()
            _wait_until_blocked(insert)

    with ThreadPoolExecutor(1) as pool:
        deleting = pool.submit(in_thread(delete_owner))
        assert deleted.wait(WAIT_S)
        with pytest.raises(
            IntegrityError, match=rf"Key \(submitted_by_id\)=\({owner.pk}\)"
        ):
            _copy_task(task, "submitted_by_id", owner.pk)

    assert deleting.exception(WAIT_S) is None
    assert not Task.objects.filter(submitted_by_id=owner.pk).exists()
