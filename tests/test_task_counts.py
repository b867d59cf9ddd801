"""Task counts per topic and status, kept by PostgreSQL as tasks change, so the
stats read a small table instead of counting every task."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count

from tasks_app.models import OutboxEntry, Task, TaskStatus, Topic
from tasks_app.selectors import stats_overview, task_counts_by_topic
from tasks_app.services.retention import task_counts_fold, tasks_purge
from tasks_app.services.tasks import (
    TaskSpec,
    task_cancel,
    task_retry,
    task_submit_many,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _counted_the_slow_way() -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {}
    rows = Task.objects.order_by().values("topic_id", "status").annotate(n=Count("id"))
    for row in rows:
        counts.setdefault(row["topic_id"], {})[row["status"]] = row["n"]
    return counts


def _kept() -> dict[int, dict[str, int]]:
    per_topic, _ = task_counts_by_topic()
    return {
        topic: {status: n for status, n in counts.items() if n}
        for topic, counts in per_topic.items()
        if any(counts.values())
    }


def test_counts_follow_every_kind_of_change(topic_name):
    other = f"{topic_name}-b"
    tasks = task_submit_many(
        submitted_by=None,
        specs=[
            TaskSpec(topic=t, message=n) for n in range(6) for t in (topic_name, other)
        ],
    )
    assert _kept() == _counted_the_slow_way()

    ids = [t.pk for t in tasks]
    OutboxEntry.objects.filter(task_id__in=ids[2:]).delete()
    Task.objects.filter(pk__in=ids[2:]).update(status=TaskStatus.PUBLISHED)
    Task.objects.filter(pk__in=ids[4:8]).update(status=TaskStatus.RUNNING)
    Task.objects.filter(pk__in=ids[4:6]).update(
        status=TaskStatus.SUCCEEDED, finished_at=tasks[0].created_at - timedelta(days=9)
    )
    Task.objects.filter(pk__in=ids[6:8]).update(status=TaskStatus.DEAD)
    task_cancel(task_id=tasks[0].uuid)
    task_retry(task_id=tasks[6].uuid)
    Task.objects.filter(pk=ids[9]).update(result={"changed": "not the status"})
    assert _kept() == _counted_the_slow_way()

    tasks_purge(older_than=timedelta(days=1), batch=10, budget_s=60)
    Task.objects.filter(pk=ids[10]).delete()
    assert _kept() == _counted_the_slow_way()


def test_folding_the_per_connection_rows_keeps_the_counts(topic_name):
    task_submit_many(
        submitted_by=None,
        specs=[TaskSpec(topic=topic_name, message=n) for n in range(3)],
    )
    with connection.cursor() as cursor:  # a second session's share of the counts
        cursor.execute(
            "UPDATE tasks_app_taskcount SET shard = shard + 1 WHERE count > 0"
        )
    task_submit_many(
        submitted_by=None,
        specs=[TaskSpec(topic=topic_name, message=n) for n in range(2)],
    )
    before = _kept()

    task_counts_fold()

    assert _kept() == before == _counted_the_slow_way()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tasks_app_taskcount")
        assert cursor.fetchone()[0] == 1


def test_the_stats_report_the_kept_counts(topic_name):
    task_submit_many(
        submitted_by=None,
        specs=[TaskSpec(topic=topic_name, message=n) for n in range(4)],
    )

    stats = stats_overview()

    [row] = [t for t in stats.topics if t.topic == topic_name]
    assert row.tasks.by_status["pending"] == 4
    assert Topic.objects.filter(name=topic_name).exists()
