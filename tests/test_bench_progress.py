"""The benchmarks' progress counter (bench/lib/rotation_run.py `count_in`):
polled every 0.2 s during a measured phase, it must not be a load of its own;
and the million run's submitters, which must stop before its clean-up."""

import uuid

import pytest
from django.conf import settings
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


def test_stopped_submitters_post_nothing_more_and_are_done_once_stop_returns():
    """A million run that stalls deletes its topics after stopping its
    submitters; a submitter still POSTing then broke the clean-up (a foreign-key
    error, 2026-11-30 22:07)."""
    from bench.scale.million import Submitters

    names = [f"t-{uuid.uuid4().hex[:12]}" for _ in range(2)]
    for name in names:
        make_topic(name)
    submitters = Submitters(
        names, tasks=4 * settings.SCHEDULER_MAX_BULK_TASKS, threads=2
    )
    submitters.stopping.set()  # as if stopped before a first list went out

    submitters.start()
    submitters.stop()

    assert all(future.done() for future in submitters.futures)
    assert [future.exception() for future in submitters.futures] == [None, None]
    assert count_in(names, tuple(TaskStatus.values))() == 0
