"""The test helper that writes beat's built-in entries back after a flush
(tests/cluster.py), while a module's beat may write them at the same moment."""

import threading

import pytest
from django.db import connection
from django_celery_beat.models import PeriodicTask

from scheduler_site.celery import app
from tests.cluster import beat_entries_restore

pytestmark = pytest.mark.django_db(transaction=True)
# A CI run once lost this race; this many tries lost it in each of 3 runs
# without the fix.
ROUNDS = 15
WRITERS = 4


def test_writers_restoring_the_entries_at_once_all_succeed():
    names = set(app.conf.beat_schedule)
    failures: list[Exception] = []
    start, done = threading.Barrier(WRITERS + 1), threading.Barrier(WRITERS + 1)

    def writer() -> None:
        try:
            for _ in range(ROUNDS):
                start.wait()
                try:
                    beat_entries_restore()
                except Exception as exc:  # noqa: BLE001 - reported by the assert
                    failures.append(exc)
                done.wait()
        finally:
            connection.close()

    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    for _ in range(ROUNDS):
        PeriodicTask.objects.filter(name__in=names).delete()
        start.wait()
        done.wait()
    for thread in threads:
        thread.join()

    assert failures == []
    stored = PeriodicTask.objects.filter(name__in=names).values_list("name", flat=True)
    assert set(stored) == names
