"""/metrics reads the task history incrementally: each web process folds the
settled rows once and reads only the recent tail afterwards. Whatever part a
row falls in, the totals stay exactly the database's."""

from collections import Counter
from datetime import timedelta

import pytest
from django.db.models import F

from tasks_app.models import Task, TaskEvent, TaskStatus
from tasks_app.selectors.task_history import history_totals, history_totals_forget
from tasks_app.services.tasks import task_cancel
from tests.publishing_helpers import publish_pending
from tests.rotation_support import make_topic, submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_process():
    history_totals_forget()
    yield
    history_totals_forget()


def _age(topic: str) -> None:
    """Move the topic's tasks and history an hour back: older than the settled
    cut-off, each row as far as the others."""
    hour = timedelta(hours=1)
    TaskEvent.objects.filter(task__topic__name=topic).update(at=F("at") - hour)
    Task.objects.filter(topic__name=topic).update(
        created_at=F("created_at") - hour, published_at=F("published_at") - hour
    )


def _database(topic: str) -> Counter:
    rows = TaskEvent.objects.filter(task__topic__name=topic).values_list("status")
    return Counter(status for (status,) in rows)


def _counts(topic: str) -> Counter:
    totals = history_totals()
    return Counter(
        {status: n for (name, status), n in totals.counts.items() if name == topic}
    )


def test_settled_and_recent_rows_each_count_once(topic_name):
    make_topic(topic_name)
    submit(topic_name, [{"n": n} for n in range(5)])
    publish_pending()
    _age(topic_name)
    assert (
        _counts(topic_name)
        == _database(topic_name)
        == Counter({TaskStatus.PENDING: 5, TaskStatus.PUBLISHED: 5})
    )

    late = submit(topic_name, [{"n": n} for n in range(2)])
    assert _counts(topic_name)[TaskStatus.PENDING] == 7  # the recent tail

    _age(topic_name)  # the two become settled and are folded in, once
    task_cancel(task_id=late[0].uuid)
    assert (
        _counts(topic_name)
        == _database(topic_name)
        == Counter(
            {TaskStatus.PENDING: 7, TaskStatus.PUBLISHED: 5, TaskStatus.CANCELLED: 1}
        )
    )


def test_publish_latency_counts_every_publication_from_its_submission(topic_name):
    make_topic(topic_name)
    submit(topic_name, [{"n": n} for n in range(4)])
    publish_pending()
    _age(topic_name)
    submit(topic_name, [{"n": 9}])
    publish_pending()

    latency = history_totals().publish_latency
    buckets = latency.cumulative((topic_name,))
    published = Task.objects.filter(topic__name=topic_name, published_at__isnull=False)
    assert buckets[-1] == ("+Inf", published.count())
    expected = sum(
        (task.published_at - task.created_at).total_seconds() for task in published
    )
    assert latency.sums[topic_name,] == pytest.approx(expected, abs=1e-3)
