"""The task table's indexes: a task's status changes stay HOT updates (no index
entries written), though the dashboard reads tasks by `finished_at`."""

import pytest
from django.db import connection
from django.utils import timezone

from tasks_app.models import Task, TaskStatus
from tasks_app.services.tasks import TaskSpec, task_submit_many

pytestmark = pytest.mark.django_db

TASKS = 50


def _updates() -> tuple[int, int]:
    """Return this transaction's (updates, HOT updates) of the task table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables"
            " WHERE relname = 'tasks_app_task'"
        )
        return cursor.fetchone()


def test_finishing_tasks_are_hot_updates(topic_name):
    specs = [TaskSpec(topic=topic_name, message=i) for i in range(TASKS)]
    tasks = task_submit_many(submitted_by=None, specs=specs)
    before = _updates()

    now = timezone.now()
    Task.objects.filter(pk__in=[task.pk for task in tasks]).update(
        status=TaskStatus.SUCCEEDED, attempts=1, started_at=now, finished_at=now
    )

    updates, hot = (
        after - first for after, first in zip(_updates(), before, strict=True)
    )
    # In one transaction a page holds both versions of its rows, so the last
    # few may not fit; a B-tree on finished_at would make none of them HOT.
    assert updates == TASKS
    assert hot >= 0.9 * TASKS
