"""/metrics after a real run: two rotation workers drain a few hundred tasks over
two topics (some retried, some dying) while a third topic waits paused; then
Prometheus' view, scraped over HTTP from gunicorn's two processes in
multiprocess mode, must agree with the database and with /api/stats/.

Nothing is timed: each wait polls the database with a generous timeout.
"""

import os
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db.models import Sum

from tasks_app.models import Slice, Task, TaskEvent, TaskStatus
from tests.cluster import running_cluster, settle, wait_for, worker_database_url
from tests.metrics_scrape import samples, value
from tests.rotation_support import make_topic, submit, wait_all_finished
from tests.web_server import gunicorn

pytestmark = pytest.mark.django_db(transaction=True)

WORKERS = ("w1", "w2")
TOKEN = "metrics-token-for-the-cluster-test-0123456789"
SLICE_MS = 200  # short slices: many deadlines, so many hand-offs
TASKS_A, RETRIED_A = 240, 6  # A: two partitions; six tasks fail once
A_SLEEP_MS = 3
TASKS_B, DYING_B = 150, 3  # B: three tasks die on their only attempt
TASKS_C = 30  # C stays paused: its lane keeps a lag
QUIET_S = 0.5
PAIRS = 3
STATUSES = {
    TaskStatus.PENDING: "submitted",
    TaskStatus.PUBLISHED: "published",
    TaskStatus.RUNNING: "started",
    TaskStatus.SUCCEEDED: "succeeded",
    TaskStatus.FAILED: "failed",
    TaskStatus.DEAD: "dead",
    TaskStatus.CANCELLED: "cancelled",
}


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[tuple]:
    """Two rotation workers, the publisher, beat, and gunicorn (two processes
    sharing their metrics through PROMETHEUS_MULTIPROC_DIR)."""
    with django_db_blocker.unblock():
        env = {**os.environ, "DATABASE_URL": worker_database_url()}
    logs = tmp_path_factory.mktemp("metrics")
    web_env = {
        **env,
        "DEBUG": "1",
        "METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(logs / "prometheus"),
    }
    with (
        running_cluster(env, logs, WORKERS) as cluster,
        gunicorn(web_env, logs / "server.log") as url,
    ):
        yield cluster, url


def _scrape(url: str) -> str:
    request = urllib.request.Request(
        f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
        return response.read().decode()


def _quiet(cluster) -> bool:
    """No member is in a slice, and no slice was recorded for a moment."""
    before = Slice.objects.count()
    time.sleep(QUIET_S)
    idle = not any(member.lane for member in cluster.members.describe())
    return idle and Slice.objects.count() == before


def _handoffs(topic: str) -> int:
    """Count the slices that followed a slice its deadline ended, per lane."""
    lanes = defaultdict(list)
    for s in Slice.objects.filter(topic__name=topic).order_by("started_at", "id"):
        lanes[s.group_id, s.partition].append(s.end_reason)
    return sum(
        1
        for reasons in lanes.values()
        for before in reasons[:-1]
        if before == "deadline"
    )


def test_metrics_after_a_run_match_the_database_and_the_stats(
    stack, topic_name, operator_client
):
    cluster, url = stack
    a, b, c = (f"{topic_name}-{x}" for x in "abc")
    make_topic(a, slice_ms=SLICE_MS, partitions=2, weight=2, retry_backoff_ms=10)
    make_topic(b, slice_ms=SLICE_MS, max_attempts=1)
    make_topic(c, slice_ms=SLICE_MS, paused=True)
    # A's lanes must outlast a slice to be handed on: at 3 ms a task, each
    # partition's ~120 tasks take longer than SLICE_MS, however fast the stack.
    slow = [{"n": n, "sleep_ms": A_SLEEP_MS} for n in range(TASKS_A)]
    submit(a, [{"fail_attempts": 1}] * RETRIED_A + slow)
    submit(b, [{"fail_attempts": 1}] * DYING_B + [{"sleep_ms": 2}] * TASKS_B)
    submit(c, [{"n": n} for n in range(TASKS_C)])
    wait_all_finished(a, RETRIED_A + TASKS_A)
    wait_all_finished(b, DYING_B + TASKS_B)
    wait_for(
        lambda: (
            Task.objects.filter(topic__name=c, status="published").count() == TASKS_C
        ),
        timeout_s=60,
        what=f"the tasks of {c} to be published",
    )
    wait_for(lambda: _quiet(cluster), timeout_s=60, what="the workers to go idle")

    first = samples(_scrape(url))
    # Pairs of scrapes at once: gunicorn's two sync processes serve one each.
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(PAIRS):
            list(pool.map(_scrape, [url, url]))
    found = samples(_scrape(url))
    stats = operator_client.get("/api/stats/").data

    events = Counter(
        TaskEvent.objects.filter(task__topic__name__in=[a, b, c]).values_list(
            "task__topic__name", "status"
        )
    )
    for topic in (a, b, c):
        for status, name in STATUSES.items():
            exposed = value(found, f"scheduler_tasks_{name}_total", topic=topic)
            assert exposed == events[topic, status], (topic, status)
    assert value(found, "scheduler_tasks_submitted_total", topic=a) == 246
    assert value(found, "scheduler_tasks_failed_total", topic=a) == RETRIED_A
    assert value(found, "scheduler_tasks_succeeded_total", topic=a) == 246
    assert value(found, "scheduler_tasks_dead_total", topic=b) == DYING_B
    assert value(found, "scheduler_tasks_started_total", topic=c) == 0

    lanes = {(x["group"], x["topic"], x["partition"]): x for x in stats["lanes"]}
    for topic in (a, b, c):
        for (group, name, partition), lane in lanes.items():
            if name != topic:
                continue
            labels = {"group": group, "topic": topic, "partition": str(partition)}
            assert value(found, "scheduler_lane_lag_messages", **labels) == lane["lag"]
            assert value(found, "scheduler_lane_paused", **labels) == lane["paused"]
    assert (
        value(
            found,
            "scheduler_lane_lag_messages",
            group="default",
            topic=c,
            partition="0",
        )
        == TASKS_C
    )

    for topic in (a, b):
        slices = Slice.objects.filter(topic__name=topic)
        group = {"group": "default", "topic": topic}
        count = value(found, "scheduler_slice_duration_seconds_count", **group)
        assert count == slices.count() > 0
        assert value(found, "scheduler_slice_messages_count", **group) == count
        assert (
            value(found, "scheduler_slice_messages_sum", **group)
            == (slices.aggregate(total=Sum("messages"))["total"])
        )
        assert (
            value(found, "scheduler_slice_duration_seconds_bucket", le="+Inf", **group)
            == count
        )
        for reason, n in Counter(slices.values_list("end_reason", flat=True)).items():
            assert value(found, "scheduler_slices_total", reason=reason, **group) == n
        published = Task.objects.filter(topic__name=topic, published_at__isnull=False)
        assert (
            value(found, "scheduler_publish_latency_seconds_count", topic=topic)
            == published.count()
        )
    gaps = value(found, "scheduler_handoff_gap_seconds_count", group="default", topic=a)
    assert gaps == _handoffs(a) > 0

    assert value(found, "scheduler_members_live") == len(WORKERS)
    shares = [value(found, "scheduler_topic_share_ratio", topic=t) for t in (a, b)]
    assert all(share > 0 for share in shares)
    assert abs(sum(shares) - 1) < 1e-9
    assert 0 < value(found, "scheduler_fairness_jain_index", over="members") <= 1

    # gunicorn's two processes add up their observations: every scrape counts,
    # whichever process served it.
    scrapes = value(found, "scheduler_metrics_collect_seconds_count")
    before = value(first, "scheduler_metrics_collect_seconds_count")
    assert scrapes == before + 2 * PAIRS + 1
    settle(cluster)
