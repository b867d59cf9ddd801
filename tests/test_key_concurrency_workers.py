"""Per-key concurrency on real Celery workers: order per key, overlap across keys,
and a holder killed mid-slice (SIGKILL) that loses nothing."""

import os
import signal
from collections import Counter
from collections.abc import Iterator

import pytest

from tasks_app.models import Task, TaskStatus
from tasks_app.services.tasks import TaskSpec, task_submit_many
from tests.cluster import (
    Cluster,
    running_cluster,
    settle,
    wait_for,
    worker_database_url,
)
from tests.handlers import runs
from tests.key_order import KEYS, assert_each_key_in_order, overlapping_keys
from tests.rotation_support import make_topic, succeeded_event_counts, wait_all_finished

WORKERS = ("kc1", "kc2")
KEY_CONCURRENCY = 8
PER_KEY = 500
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def cluster(django_db_setup, django_db_blocker, tmp_path_factory):
    """Two rotation workers, a publisher worker and beat, for the module."""
    with django_db_blocker.unblock():
        env = {**os.environ, "DATABASE_URL": worker_database_url()}
    with running_cluster(env, tmp_path_factory.mktemp("kc"), WORKERS) as cluster:
        yield cluster


@pytest.fixture
def workers(cluster: Cluster) -> Iterator[Cluster]:
    """Let the workers leave their slices before the tables are emptied."""
    yield cluster
    settle(cluster)


def test_a_holder_killed_mid_slice_loses_nothing_and_reruns_only_its_in_flight_tasks(
    workers, topic_name
):
    make_topic(topic_name, slice_ms=1000, key_concurrency=KEY_CONCURRENCY)
    specs = [
        TaskSpec(topic=topic_name, message={"n": n, "sleep_ms": 20}, key=KEYS[n % 4])
        for n in range(4 * PER_KEY)
    ]
    tasks = [
        task
        for first in range(0, len(specs), 1000)
        for task in task_submit_many(
            submitted_by=None, specs=specs[first : first + 1000]
        )
    ]
    holder = wait_for(
        lambda: (
            Task.objects.filter(
                topic__name=topic_name, status=TaskStatus.SUCCEEDED
            ).count()
            >= 100
            and workers.holder_of(topic_name)
        ),
        timeout_s=60,
        what="a worker to be well into the lane",
    )
    workers.signal(workers.name_of(holder), signal.SIGKILL)
    workers.wait_exit(workers.name_of(holder))
    workers.running.pop(workers.name_of(holder), None)
    workers.start_worker(workers.name_of(holder))

    wait_all_finished(topic_name, len(tasks), timeout_s=300)

    assert set(
        Task.objects.filter(topic__name=topic_name).values_list("status", flat=True)
    ) == {TaskStatus.SUCCEEDED}
    assert succeeded_event_counts(topic_name) == {1}
    events = runs(topic_name)
    starts = Counter(e["task"] for e in events if e["phase"] == "start")
    assert len(starts) == len(tasks)  # every task ran
    # Each key has at most one started, unrecorded task when the holder dies.
    rerun = [task for task, count in starts.items() if count > 1]
    assert len(rerun) <= len(KEYS)
    # The killed holder's in-flight starts have no end; the rest keeps key order.
    started = {(e["task"], e["attempt"]) for e in events if e["phase"] == "start"}
    ended = {(e["task"], e["attempt"]) for e in events if e["phase"] != "start"}
    unended = frozenset(started - ended)
    assert len(unended) <= len(KEYS)
    assert_each_key_in_order(topic_name, skip=unended)
    assert len(overlapping_keys(topic_name)) >= 3
