"""The benchmarks' progress counter (bench/lib/rotation_run.py `count_in`):
polled every 0.2 s during a measured phase, it must not be a load of its own."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench.lib.rotation_run import count_in
from tasks_app.models import TaskStatus
from tests.rotation_support import make_topic, submit

pytestmark = pytest.mark.django_db(transaction=True)


def test_progress_is_read_from_the_kept_counts_not_by_counting_task_rows():
    names = [f"t-{uuid.uuid4().hex[:12]}" for _ in range(2)]
    for name in names:
        make_topic(name)
    submit(names[0], [{"n": n} for n in range(3)])
    submit(names[1], [{"n": n} for n in range(2)])
    pending = count_in(names, (TaskStatus.PENDING,))

    with CaptureQueriesContext(connection) as queries:
        counted = [pending(), count_in(names[1:], (TaskStatus.PENDING,))()]

    assert counted == [5, 2]
    assert count_in(names, (TaskStatus.SUCCEEDED,))() == 0
    assert not [q for q in queries if '"tasks_app_task"' in q["sql"]]
