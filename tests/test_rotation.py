"""End-to-end rotation: real Celery workers, PostgreSQL, Redis and the Kafka broker.

Each test proves one invariant of DESIGN section 3 on tasks submitted through the
services, published by the real publisher and run by real worker processes.
"""

import itertools
import os
import signal
import time
from collections.abc import Iterator

import pytest

from tasks_app.models import Slice, Task, TaskStatus
from tests.cluster import (
    Cluster,
    running_cluster,
    settle,
    wait_for,
    worker_database_url,
)
from tests.handlers import runs
from tests.rotation_support import (
    lane_slices,
    make_topic,
    submit,
    succeeded_event_counts,
    wait_all_finished,
)

WORKERS = ("w1", "w2", "w3")
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def cluster(django_db_setup, django_db_blocker, tmp_path_factory):
    """Three rotation workers, a publisher worker and beat, for the whole module."""
    with django_db_blocker.unblock():
        env = {**os.environ, "DATABASE_URL": worker_database_url()}
    with running_cluster(env, tmp_path_factory.mktemp("cluster"), WORKERS) as cluster:
        yield cluster


@pytest.fixture
def workers(cluster: Cluster) -> Iterator[Cluster]:
    """Make sure all three workers run (a test may have killed one); afterwards,
    let them leave their slices before the tables are emptied."""
    for name in WORKERS:
        if not cluster.alive(name):
            cluster.running.pop(name, None)
            cluster.start_worker(name)
    yield cluster
    settle(cluster)


def test_handlers_run_one_at_a_time_in_submission_order(workers, topic_name):
    make_topic(topic_name, slice_ms=100)
    tasks = submit(topic_name, [{"n": i, "sleep_ms": 1} for i in range(1500)])
    wait_all_finished(topic_name, len(tasks))

    entries = runs(topic_name)
    phases = [e["phase"] for e in entries]
    assert phases == ["start", "end"] * len(tasks)  # never two handlers at once
    ended = [e["task"] for e in entries if e["phase"] == "end"]
    assert ended == [str(t.uuid) for t in tasks]


def test_next_holder_resumes_exactly_where_the_last_stopped(workers, topic_name):
    make_topic(topic_name, slice_ms=100)
    tasks = submit(topic_name, [{"sleep_ms": 1} for _ in range(1500)])
    wait_all_finished(topic_name, len(tasks))
    wait_for(  # a slice is recorded just after its last outcomes
        lambda: sum(s.messages for s in lane_slices(topic_name)) >= len(tasks),
        timeout_s=10,
        what="the last slice to be recorded",
    )

    working = [s for s in lane_slices(topic_name) if s.messages]
    assert len(working) > 3
    for before, after in itertools.pairwise(working):
        assert after.first_offset == before.last_offset + 1
    assert sum(s.messages for s in working) == len(tasks)
    assert succeeded_event_counts(topic_name) == {1}


def test_consecutive_slices_of_a_lane_go_to_different_members(workers, topic_name):
    make_topic(topic_name, slice_ms=100)
    tasks = submit(topic_name, [{"sleep_ms": 2} for _ in range(800)])
    wait_all_finished(topic_name, len(tasks))

    members = [s.member for s in lane_slices(topic_name)]
    assert len(members) > 3
    assert all(a != b for a, b in itertools.pairwise(members))
    assert len(set(members)) == len(WORKERS)


def test_paused_topic_is_not_consumed_until_resumed(workers, topic_name):
    from tasks_app.services.topics import topic_set_paused

    topic = make_topic(topic_name, slice_ms=100)
    topic_set_paused(topic=topic, paused=True)
    tasks = submit(topic_name, [{"n": i} for i in range(20)])
    wait_for(
        lambda: (
            Task.objects.filter(topic=topic, status=TaskStatus.PUBLISHED).count() == 20
        ),
        timeout_s=30,
        what="tasks to be published",
    )
    time.sleep(2.0)  # several watchdog ticks: nothing may start
    assert runs(topic_name) == []

    topic_set_paused(topic=topic, paused=False)
    wait_all_finished(topic_name, len(tasks), timeout_s=30)


def test_failures_retry_in_place_in_order_and_dead_tasks_reach_the_dlq(
    workers, topic_name
):
    from tests.kafka_read import read_topic

    make_topic(topic_name, slice_ms=500, max_attempts=3, retry_backoff_ms=50)
    messages = [
        {"n": 0},
        {"n": 1, "fail_attempts": 2},
        {"n": 2},
        {"n": 3, "fail_attempts": 9},
        {"n": 4},
    ]
    tasks = submit(topic_name, messages)
    wait_all_finished(topic_name, len(tasks))

    statuses = [Task.objects.get(pk=t.pk).status for t in tasks]
    assert statuses == ["succeeded", "succeeded", "succeeded", "dead", "succeeded"]
    order = [(e["task"], e["phase"]) for e in runs(topic_name)]
    ids = [str(t.uuid) for t in tasks]
    assert order == [
        (ids[0], "start"),
        (ids[0], "end"),
        (ids[1], "start"),
        (ids[1], "fail"),
        (ids[1], "start"),
        (ids[1], "fail"),
        (ids[1], "start"),
        (ids[1], "end"),
        (ids[2], "start"),
        (ids[2], "end"),
        (ids[3], "start"),
        (ids[3], "fail"),
        (ids[3], "start"),
        (ids[3], "fail"),
        (ids[3], "start"),
        (ids[3], "fail"),
        (ids[4], "start"),
        (ids[4], "end"),
    ]
    dead = Task.objects.get(pk=tasks[3].pk)
    assert "planned failure on attempt 3" in dead.error
    assert dead.attempts == 3
    letters = read_topic(f"{topic_name}.dlq", expected=1)
    assert [dict(m.headers())["task_id"].decode() for m in letters] == [ids[3]]


def _signal_the_holder(
    workers: Cluster, topic: str, signum: signal.Signals
) -> tuple[str, float]:
    """Send the lane's holder a signal; return the member and when it was sent."""
    holder = wait_for(
        lambda: workers.holder_of(topic),
        timeout_s=30,
        what="a worker to hold the lane",
    )
    workers.signal(workers.name_of(holder), signum)
    return holder, time.time()


def test_sigterm_hands_the_lane_on_at_once(workers, topic_name):
    make_topic(topic_name, slice_ms=20_000)
    submit(topic_name, [{"sleep_ms": 20} for _ in range(400)])
    holder, stopped_at = _signal_the_holder(workers, topic_name, signal.SIGTERM)
    workers.wait_exit(workers.name_of(holder))

    nxt = wait_for(
        lambda: (
            Slice.objects.filter(
                topic__name=topic_name, started_at__gt=_ts(stopped_at - 1)
            )
            .exclude(member=holder)
            .first()
        ),
        timeout_s=10,
        what="another member to take the lane",
    )
    ended = Slice.objects.get(topic__name=topic_name, member=holder)
    assert ended.end_reason == "shutdown"
    # The lease would have lasted 20.7 s; the hand-off must not wait for it.
    assert nxt.started_at.timestamp() - stopped_at < 10


def _ts(epoch_s: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch_s, UTC)


def _stop_a_holder(workers: Cluster, topic: str) -> tuple[str, float]:
    """SIGSTOP the lane's holder while it holds the lease; return the member and
    when it was stopped. A holder that let the lease go between being read and
    being stopped is resumed, and the next holder is tried."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        holder, stopped_at = _signal_the_holder(workers, topic, signal.SIGSTOP)
        if workers.holder_of(topic) == holder:
            return holder, stopped_at
        workers.signal(workers.name_of(holder), signal.SIGCONT)
    raise AssertionError("no holder was stopped while it held the lane's lease")


def test_frozen_holder_is_fenced_out_and_the_lane_resumes_from_the_fence(
    workers, topic_name
):
    from tasks_app.models import LaneState
    from tests.kafka_read import commit_offset, committed_offset

    make_topic(topic_name, slice_ms=300)  # lease TTL 1.0 s with the test grace
    tasks = submit(topic_name, [{"sleep_ms": 200} for _ in range(30)])
    holder, stopped_at = _stop_a_holder(workers, topic_name)
    name = workers.name_of(holder)
    try:
        wait_for(
            lambda: _slices_after(topic_name, stopped_at, exclude=holder),
            timeout_s=30,
            what="another member to take over the frozen lane",
        )
        commit_offset("default", topic_name, 0, 0)  # a late, regressed Kafka commit
    finally:
        workers.signal(name, signal.SIGCONT)
    wait_all_finished(topic_name, len(tasks))

    # The holder may have been stopped after taking the lease but before its
    # slice's clock started: the frozen slice is its first to end after the stop.
    frozen = wait_for(
        lambda: (
            Slice.objects.filter(
                topic__name=topic_name, member=holder, ended_at__gt=_ts(stopped_at)
            )
            .order_by("started_at")
            .first()
        ),
        timeout_s=10,
        what="the frozen holder's slice to be recorded",
    )
    assert frozen.end_reason == "lease_lost"
    assert succeeded_event_counts(topic_name) == {1}
    lane = LaneState.objects.get(topic__name=topic_name)
    assert lane.next_offset == len(tasks)
    assert committed_offset("default", topic_name, 0) == len(tasks)


def test_killed_holder_lane_resumes_after_its_lease_and_loses_nothing(
    workers, topic_name
):
    make_topic(topic_name, slice_ms=1000)
    tasks = submit(topic_name, [{"sleep_ms": 20} for _ in range(200)])
    holder, killed_at = _signal_the_holder(workers, topic_name, signal.SIGKILL)
    workers.wait_exit(workers.name_of(holder))

    taken = wait_for(
        lambda: _slices_after(topic_name, killed_at, exclude=holder),
        timeout_s=30,
        what="another member to take the lane",
    )
    # Lease TTL 1.7 s plus a 0.5 s watchdog tick, with room for a loaded machine;
    # without the watchdog the lane would wait for Redis' 1 h visibility timeout.
    assert taken.started_at.timestamp() - killed_at < 1.7 + 0.5 + 8
    wait_all_finished(topic_name, len(tasks))
    assert succeeded_event_counts(topic_name) == {1}


def _slices_after(topic: str, since: float, *, exclude: str) -> Slice | None:
    return (
        Slice.objects.filter(topic__name=topic, started_at__gt=_ts(since))
        .exclude(member=exclude)
        .order_by("started_at")
        .first()
    )


def _shares_while_backlogged(
    names: list[str], sizes: list[int], weights: list[int], drainers: list[str]
) -> dict[str, float]:
    """Run backlogs on fresh topics; return each topic's busy time per unit of
    weight, relative to the mean, over the window in which all were backlogged."""
    from tasks_app.services.topics import topic_set_paused
    from tests.rotation_support import busy_seconds

    topics = [
        make_topic(name, slice_ms=200, weight=weight)
        for name, weight in zip(names, weights, strict=True)
    ]
    for name, size in zip(names, sizes, strict=True):
        submit(name, [{"sleep_ms": 10}] * size)
    wait_for(
        lambda: Slice.objects.filter(
            topic__name__in=drainers, end_reason="drained"
        ).exists(),
        timeout_s=180,
        what="a small topic to drain",
    )
    for topic in topics:
        topic_set_paused(topic=topic, paused=True)

    slices = {name: lane_slices(name) for name in names}
    start = max(s[0].started_at.timestamp() for s in slices.values())
    end = min(
        s.ended_at.timestamp()
        for name in drainers
        for s in slices[name]
        if s.end_reason == "drained"
    )
    per_weight = {
        name: busy_seconds(slices[name], start, end) / weight
        for name, weight in zip(names, weights, strict=True)
    }
    mean = sum(per_weight.values()) / len(per_weight)
    return {name: round(value / mean, 3) for name, value in per_weight.items()}


def test_backlogged_topics_share_processing_time_equally(workers):
    import uuid

    names = [f"fair-{uuid.uuid4().hex[:8]}-{i}" for i in range(4)]
    sizes = [400, 400, 400, 20_000]  # the last has 50x the backlog of the others
    shares = _shares_while_backlogged(names, sizes, [1, 1, 1, 1], names[:3])
    assert all(abs(share - 1) <= 0.15 for share in shares.values()), shares


def test_backlogged_topics_share_processing_time_by_weight(workers):
    import uuid

    # The heavy lane's fair share is 2/8 of 3 workers: under one worker, which
    # is all a lane can use (one holder at a time).
    names = [f"weight-{uuid.uuid4().hex[:8]}-{i}" for i in range(7)]
    weights = [1, 1, 1, 1, 1, 1, 2]
    sizes = [300] * 6 + [5_000]
    shares = _shares_while_backlogged(names, sizes, weights, names[:6])
    assert all(abs(share - 1) <= 0.15 for share in shares.values()), list(
        shares.values()
    )


def test_sequential_group_walks_topics_one_member_slice_at_a_time(workers):
    import uuid

    from tasks_app.services.topics import group_create, group_default

    names = [f"seq-{uuid.uuid4().hex[:8]}-{i}" for i in range(2)]
    topics = [make_topic(name, slice_ms=150) for name in names]
    group_default().topics.remove(*topics)
    for name in names:
        submit(name, [{"sleep_ms": 5}] * 300)
    wait_for(
        lambda: (
            Task.objects.filter(topic__in=topics, status=TaskStatus.PUBLISHED).count()
            == 600
        ),
        timeout_s=30,
        what="both topics to be published",
    )
    group = group_create(
        group_id=f"seq-{uuid.uuid4().hex[:8]}",
        topic_names=names,
        walk_mode="sequential",
    )
    for name in names:
        wait_all_finished(name, 300)

    slices = list(Slice.objects.filter(group=group).order_by("started_at"))
    for before, after in itertools.pairwise(slices):
        assert after.started_at >= before.ended_at  # one slice of the group at a time
    drains = [i for i, s in enumerate(slices) if s.end_reason == "drained"]
    first_drain = drains[0] if drains else len(slices) - 1  # may not be recorded yet
    runs_by_topic = _runs([s for s in slices[: first_drain + 1] if s.messages])
    for run in runs_by_topic[:-1]:
        assert len(run) == len(WORKERS), [(s.topic.name, s.member) for s in run]
        assert len({s.member for s in run}) == len(run)


def _runs(slices: list[Slice]) -> list[list[Slice]]:
    """Split slices into maximal runs on the same topic."""
    runs: list[list[Slice]] = []
    for s in slices:
        if runs and runs[-1][-1].topic_id == s.topic_id:
            runs[-1].append(s)
        else:
            runs.append([s])
    return runs


def test_a_task_whose_handler_kills_its_worker_ends_dead_after_max_attempts(
    workers, topic_name
):
    make_topic(topic_name, slice_ms=500, max_attempts=2)
    tasks = submit(topic_name, [{"n": 0}, {"n": 1}, {"die": True}, {"n": 3}])
    poison = tasks[2]

    def dead_or_restart() -> bool:
        for name in WORKERS:  # a supervisor restarts what the handler killed
            if not workers.alive(name):
                workers.running.pop(name, None)
                workers.start_worker(name)
        return Task.objects.filter(pk=poison.pk, status=TaskStatus.DEAD).exists()

    wait_for(dead_or_restart, timeout_s=120, what="the poison task to end dead")
    wait_all_finished(topic_name, len(tasks))

    dead = Task.objects.get(pk=poison.pk)
    assert "did not finish" in dead.error
    assert dead.attempts == 2
    poison_runs = [r for r in runs(topic_name) if r["task"] == str(poison.uuid)]
    # Each run is counted before it starts, except possibly the very first one
    # (no per-task write happens until a crash was seen): see docs/handlers.md.
    assert 2 <= len(poison_runs) <= 3, [r["attempt"] for r in poison_runs]
    statuses = [Task.objects.get(pk=t.pk).status for t in tasks]
    assert statuses == ["succeeded", "succeeded", "dead", "succeeded"]
    ends = [r["task"] for r in runs(topic_name) if r["phase"] == "end"]
    assert ends[-1] == str(tasks[3].uuid)


def test_growing_a_topics_partitions_keeps_each_keys_order(workers, topic_name):
    from rotation.kafka.admin import ensure_topics
    from tasks_app.services.tasks import TaskSpec, task_submit_many
    from tasks_app.services.topics import topic_set_paused, topic_update

    # Kafka holds four partitions already: the embedded broker cannot add any.
    ensure_topics(os.environ["KAFKA_BOOTSTRAP_SERVERS"], {topic_name: 4})
    topic = make_topic(topic_name, slice_ms=300, paused=True)
    keys = [f"k{n}" for n in range(12)]

    def submit_round(count: int) -> list[Task]:
        specs = [
            TaskSpec(topic=topic_name, message={"sleep_ms": 3}, key=keys[n % 12])
            for n in range(count)
        ]
        return task_submit_many(submitted_by=None, specs=specs)

    before = submit_round(240)  # all in partition 0
    wait_for(
        lambda: not Task.objects.filter(topic=topic, status="pending").exists(),
        timeout_s=30,
        what="the first tasks to be published",
    )
    topic_update(topic=topic, partitions=4)
    after = submit_round(120)  # keys spread over four partitions now
    topic_set_paused(topic=topic, paused=False)
    wait_all_finished(topic_name, len(before) + len(after), timeout_s=180)

    events = runs(topic_name)
    for key in keys:
        ids = [str(t.uuid) for t in before + after if t.key == key]
        mine = [e for e in events if e["task"] in ids and e["phase"] != "fail"]
        assert [e["task"] for e in mine if e["phase"] == "end"] == ids, key
        phases = [e["phase"] for e in mine]
        assert phases == ["start", "end"] * len(ids), f"{key} overlapped"
    assert (
        Task.objects.filter(pk__in=[t.pk for t in after])
        .values("partition")
        .distinct()
        .count()
        > 1
    )


def test_a_rate_limited_topic_holds_its_rate_while_an_unlimited_one_drains(workers):
    import uuid

    from tasks_app.services.tasks import TaskSpec, task_submit_many

    limited, free = (f"{kind}-{uuid.uuid4().hex[:8]}" for kind in ("rl", "free"))
    rate, burst = 20.0, 10
    make_topic(limited, partitions=3, slice_ms=500, rate_limit=rate, rate_burst=burst)
    make_topic(free, slice_ms=500)
    specs = [TaskSpec(topic=limited, message={}, key=f"k{i % 9}") for i in range(400)]
    task_submit_many(submitted_by=None, specs=specs)  # over its three lanes
    submit(free, [{"sleep_ms": 5}] * 300)
    wait_all_finished(free, 300, timeout_s=60)

    starts = sorted(e["t"] for e in runs(limited) if e["phase"] == "start")
    elapsed = starts[-1] - starts[0]
    # Token bucket: by each start, at most burst + rate x time since the first
    # grant, which came up to a batch's loading before the first start: a
    # generous second of slack (without the limit, all 400 run in about one).
    assert all(
        n + 1 <= burst + rate * (t - starts[0] + 1.0) for n, t in enumerate(starts)
    )
    assert len(starts) < 400  # still backlogged while the free topic drained
    # Rate-limited lanes wait for their tokens instead of spinning on turns.
    waits = Slice.objects.filter(topic__name=limited, end_reason="rate_limited")
    assert waits.count() <= 10 * max(elapsed, 1.0), waits.count()
