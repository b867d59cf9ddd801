"""Bounded storage: finished tasks and their history are purged after the
retention period, in batches; dead tasks stay until retried or purged on purpose."""

import io
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from tasks_app.models import DeadLetter, OutboxEntry, Slice, Task, TaskEvent, TaskStatus
from tasks_app.services.retention import (
    retention_purge_run,
    slices_purge,
    tasks_purge,
)
from tasks_app.services.tasks import TaskSpec, task_submit_many
from tasks_app.services.topics import topic_create
from tests.db_catalog import rows_read_so_far
from tests.factories import SliceFactory

pytestmark = pytest.mark.django_db(transaction=True)

DAYS = 3


def _tasks(topic: str, count: int) -> list[Task]:
    specs = [TaskSpec(topic=topic, message=n) for n in range(count)]
    return task_submit_many(submitted_by=None, specs=specs)


def _finish(tasks: list[Task], status: str, *, days_ago: float) -> None:
    """Mark tasks finished `days_ago`, created just before, with a history event
    (and out of the outbox, as the publisher leaves them)."""
    at = timezone.now() - timedelta(days=days_ago)
    ids = [t.pk for t in tasks]
    OutboxEntry.objects.filter(task_id__in=ids).delete()
    Task.objects.filter(pk__in=ids).update(
        status=status, finished_at=at, created_at=at - timedelta(seconds=1)
    )
    TaskEvent.objects.bulk_create(
        [TaskEvent(task_id=i, status=status, at=at) for i in ids]
    )


def test_finished_tasks_past_retention_go_with_their_history(topic_name):
    old_done, old_cancelled, old_dead, old_running, recent = (
        _tasks(topic_name, 5) for _ in range(5)
    )
    _finish(old_done, TaskStatus.SUCCEEDED, days_ago=DAYS + 1)
    _finish(old_cancelled, TaskStatus.CANCELLED, days_ago=DAYS + 1)
    _finish(old_dead, TaskStatus.DEAD, days_ago=DAYS + 1)
    Task.objects.filter(pk__in=[t.pk for t in old_running]).update(
        status=TaskStatus.RUNNING,
        created_at=timezone.now() - timedelta(days=DAYS + 2),
    )
    _finish(recent, TaskStatus.SUCCEEDED, days_ago=DAYS - 1)

    purged = tasks_purge(older_than=timedelta(days=DAYS), batch=3, budget_s=60)

    assert purged == 10
    kept = set(Task.objects.filter(topic__name=topic_name).values_list("pk", flat=True))
    assert kept == {t.pk for t in old_dead + old_running + recent}
    gone = [t.pk for t in old_done + old_cancelled]
    assert not TaskEvent.objects.filter(task_id__in=gone).exists()
    assert TaskEvent.objects.filter(task_id__in=[t.pk for t in recent]).count() == 10


def test_a_dead_letter_not_yet_sent_keeps_its_task(topic_name):
    [task] = _tasks(topic_name, 1)
    _finish([task], TaskStatus.SUCCEEDED, days_ago=DAYS + 1)
    DeadLetter.objects.create(
        task=task, topic=task.topic, key=task.key, envelope="{}", error="x"
    )

    assert tasks_purge(older_than=timedelta(days=DAYS), batch=10, budget_s=60) == 0
    assert Task.objects.filter(pk=task.pk).exists()


def test_nothing_to_purge_is_zero_and_a_zero_budget_purges_one_batch(topic_name):
    tasks = _tasks(topic_name, 4)
    assert tasks_purge(older_than=timedelta(days=DAYS), batch=2, budget_s=60) == 0

    _finish(tasks, TaskStatus.SUCCEEDED, days_ago=DAYS + 1)

    assert tasks_purge(older_than=timedelta(days=DAYS), batch=2, budget_s=0) == 2
    assert tasks_purge(older_than=timedelta(days=DAYS), batch=2, budget_s=60) == 2


def test_a_task_still_in_the_outbox_is_kept(topic_name):
    [task] = _tasks(topic_name, 1)
    _finish([task], TaskStatus.CANCELLED, days_ago=DAYS + 1)
    OutboxEntry.objects.create(
        task=task,
        topic_name=topic_name,
        key=task.key,
        envelope="{}",
        available_at=timezone.now(),
    )

    assert tasks_purge(older_than=timedelta(days=DAYS), batch=10, budget_s=60) == 0


def test_the_periodic_purge_follows_the_retention_setting(topic_name, settings):
    tasks = _tasks(topic_name, 3)
    _finish(tasks, TaskStatus.SUCCEEDED, days_ago=2)

    settings.SCHEDULER_RETENTION_DAYS = 0
    assert retention_purge_run() == 0, "0 keeps everything"
    settings.SCHEDULER_RETENTION_DAYS = 1
    assert retention_purge_run() == 3


def test_the_command_purges_dead_tasks_only_when_asked(topic_name):
    dead = _tasks(topic_name, 2)
    _finish(dead, TaskStatus.DEAD, days_ago=DAYS + 1)
    out = io.StringIO()

    call_command("tasks_purge", "--days", str(DAYS), stdout=out)
    assert Task.objects.filter(pk__in=[t.pk for t in dead]).count() == 2

    call_command("tasks_purge", "--days", str(DAYS), "--dead", stdout=out)
    assert not Task.objects.filter(pk__in=[t.pk for t in dead]).exists()
    assert "Deleted 2 tasks" in out.getvalue()


def test_slice_records_past_retention_go():
    now = timezone.now()
    old = SliceFactory.create_batch(3, ended_at=now - timedelta(days=DAYS + 1))
    recent = SliceFactory(ended_at=now - timedelta(days=DAYS - 1))

    assert slices_purge(older_than=timedelta(days=DAYS), batch=2, budget_s=60) == 3
    assert not Slice.objects.filter(pk__in=[s.pk for s in old]).exists()
    assert Slice.objects.filter(pk=recent.pk).exists()


def _topic_tasks(
    name: str, retention_days: float | None, *, days_ago: float
) -> list[Task]:
    """Two succeeded tasks of topic `name` (its retention set first) that
    finished `days_ago`."""
    topic_create(name=name, retention_days=retention_days)
    tasks = _tasks(name, 2)
    _finish(tasks, TaskStatus.SUCCEEDED, days_ago=days_ago)
    return tasks


def _left(*groups: list[Task]) -> set[int]:
    ids = [task.pk for group in groups for task in group]
    return set(Task.objects.filter(pk__in=ids).values_list("pk", flat=True))


def test_a_topic_keeps_its_finished_tasks_for_its_own_retention(settings):
    """A topic's retention_days overrides SCHEDULER_RETENTION_DAYS for its
    tasks, longer or shorter; empty follows the setting."""
    settings.SCHEDULER_RETENTION_DAYS = DAYS
    prefix = f"ret-{uuid.uuid4().hex[:8]}"
    longer_old = _topic_tasks(f"{prefix}-longer", DAYS * 3, days_ago=DAYS + 1)
    default_old = _topic_tasks(f"{prefix}-default", None, days_ago=DAYS + 1)
    shorter_old = _topic_tasks(f"{prefix}-shorter", 1, days_ago=DAYS + 1)
    default_recent = _tasks(f"{prefix}-default", 2)
    _finish(default_recent, TaskStatus.SUCCEEDED, days_ago=2)
    shorter_recent = _tasks(f"{prefix}-shorter", 2)
    _finish(shorter_recent, TaskStatus.SUCCEEDED, days_ago=2)

    assert retention_purge_run() == 6

    assert _left(longer_old, default_old, shorter_old) == {t.pk for t in longer_old}
    assert _left(default_recent, shorter_recent) == {t.pk for t in default_recent}


def test_a_retention_of_zero_keeps_a_topics_tasks_until_deleted(settings):
    settings.SCHEDULER_RETENTION_DAYS = DAYS
    prefix = f"ret-{uuid.uuid4().hex[:8]}"
    kept = _topic_tasks(f"{prefix}-kept", 0, days_ago=DAYS * 10)
    purged = _topic_tasks(f"{prefix}-purged", None, days_ago=DAYS * 10)

    assert retention_purge_run() == 2

    assert _left(kept, purged) == {t.pk for t in kept}


def test_a_topics_retention_applies_when_the_setting_keeps_everything(settings):
    settings.SCHEDULER_RETENTION_DAYS = 0
    prefix = f"ret-{uuid.uuid4().hex[:8]}"
    purged = _topic_tasks(f"{prefix}-purged", 1, days_ago=2)
    kept = _topic_tasks(f"{prefix}-kept", None, days_ago=DAYS * 10)

    assert retention_purge_run() == 2

    assert _left(kept, purged) == {t.pk for t in kept}


@pytest.fixture
def index_scans_only():
    """Plan as on a large table (index scans), whatever this small one's size."""
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET enable_seqscan")


def test_a_purge_does_not_read_the_tasks_a_longer_retention_keeps(
    settings, index_scans_only
):
    """A topic that keeps its tasks longer holds many rows past the others'
    cutoff; the purge of the others' tasks must not read them again for every
    batch (a table of millions would take the purge's whole budget)."""
    settings.SCHEDULER_RETENTION_DAYS = DAYS
    settings.SCHEDULER_PURGE_BATCH = 10
    prefix = f"ret-{uuid.uuid4().hex[:8]}"
    topic_create(name=f"{prefix}-kept", retention_days=DAYS * 10)
    kept, purged = [], []
    for _ in range(20):  # interleaved by id, as tasks of busy topics are
        kept += _tasks(f"{prefix}-kept", 10)
        purged += _tasks(f"{prefix}-purged", 10)
    _finish(kept + purged, TaskStatus.SUCCEEDED, days_ago=DAYS + 1)
    before = rows_read_so_far(Task)

    assert retention_purge_run() == len(purged)

    assert rows_read_so_far(Task) - before < 4 * len(purged)
    assert _left(kept, purged) == {t.pk for t in kept}
