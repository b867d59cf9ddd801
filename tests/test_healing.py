"""PostgreSQL is the truth: when Kafka loses a lane's messages, the lane heals.

Each test runs against a private Kafka-protocol broker (memory storage only) that
it restarts to lose everything, as a restarted `make dev` or a lost cluster
would; PostgreSQL and Redis are the session's. Slices run in process.
"""

import logging
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from rotation.lanes import Lane
from rotation.store import EndReason
from scheduler_site.devstack import brokers
from scheduler_site.devstack.process import free_port
from tasks_app.models import PartitionHead, Task, TaskStatus
from tasks_app.services.execution import batch_process
from tasks_app.services.healing import lane_heal
from tasks_app.services.lane_store import DatabaseLaneStore
from tasks_app.services.publisher_lock import PUBLISHER_LOCK_KEY
from tasks_app.services.rotation_events import rotation_event_totals
from tests.cluster import wait_for
from tests.handlers import runs
from tests.lane_harness import Harness
from tests.publishing_helpers import producer_for, publish_pending
from tests.rotation_support import make_topic, submit

pytestmark = pytest.mark.django_db(transaction=True)


class PrivateBroker:
    """A broker of this test's own, restarted on the same port to lose its data."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="healing-"))
        self.port = free_port()
        self.service = brokers.start_kafka(self.dir, self.port, persistent=False)

    @property
    def url(self) -> str:
        return self.service.url

    def restart_empty(self) -> None:
        self.service.stop()
        self.service = brokers.start_kafka(self.dir, self.port, persistent=False)


@pytest.fixture
def broker(settings, monkeypatch) -> Iterator[PrivateBroker]:
    """Point the app (settings) and the harness (environment) at a private broker."""
    private = PrivateBroker()
    settings.KAFKA_BOOTSTRAP_SERVERS = private.url
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", private.url)
    yield private
    private.service.stop()


def _drain(runner: Harness, lane: Lane, *, turns: int = 20) -> list[str | None]:
    """Run the lane's turns until it drains; return the slices' end reasons."""
    reasons: list[str | None] = []
    for _ in range(turns):
        record = runner.run_turn(lane)
        reasons.append(record.end_reason if record else None)
        if reasons[-1] == EndReason.DRAINED:
            return reasons
    raise AssertionError(f"the lane never drained: {reasons}")


def _publish_all(topic: str) -> None:
    """Publish until no task of the topic is pending, as beat's ticks would (the
    first batch after a broker restart may fail: its producer state is gone)."""
    wait_for(
        lambda: (
            publish_pending() >= 0
            and not Task.objects.filter(topic__name=topic, status="pending").exists()
        ),
        timeout_s=60,
        what=f"the tasks of {topic} to be published",
        interval_s=0.2,
    )


def _ended(topic: str) -> list[str]:
    return [r["task"] for r in runs(topic) if r["phase"] == "end"]


def _lane_topic(**policy) -> tuple[Lane, str]:
    topic = make_topic(f"heal-{uuid.uuid4().hex[:10]}", **policy)
    return Lane("default", topic.name, 0), topic.name


def test_a_backlog_the_broker_forgot_is_published_again_and_runs_in_order(
    broker, slice_harness, caplog
):
    lane, topic = _lane_topic(slice_ms=2000)
    tasks = submit(topic, [{"n": n} for n in range(30)])
    publish_pending()
    runner = slice_harness()
    broker.restart_empty()  # everything published is gone from Kafka

    with caplog.at_level(logging.INFO):
        reasons = _drain(runner, lane)

    assert _ended(topic) == [str(t.uuid) for t in tasks]
    assert EndReason.LOG_LOST in reasons
    healed = [r.message for r in caplog.records if "healed" in r.message]
    assert len(healed) == 1, healed
    assert "30 unfinished tasks" in healed[0]
    assert rotation_event_totals()["healed", "default", topic] == 1  # /metrics
    statuses = Task.objects.filter(topic__name=topic).values_list("status", flat=True)
    assert set(statuses) == {TaskStatus.SUCCEEDED}


def test_tasks_published_after_the_loss_wait_for_the_older_ones(broker, slice_harness):
    lane, topic = _lane_topic(slice_ms=2000)
    older = submit(topic, [{"n": n} for n in range(10)])
    publish_pending()
    runner = slice_harness()
    broker.restart_empty()
    newer = submit(topic, [{"n": n} for n in range(10, 15)])
    _publish_all(topic)  # lands at offsets the lost tasks had: a reset log

    assert PartitionHead.objects.get(topic__name=topic, partition=0).lost
    _drain(runner, lane)

    assert _ended(topic) == [str(t.uuid) for t in older + newer]


def test_finished_tasks_are_not_run_again_after_the_loss(broker, slice_harness):
    lane, topic = _lane_topic(slice_ms=2000)
    first = submit(topic, [{"n": n} for n in range(5)])
    publish_pending()
    runner = slice_harness()
    _drain(runner, lane)
    broker.restart_empty()
    second = submit(topic, [{"n": n} for n in range(5, 8)])
    _publish_all(topic)

    _drain(runner, lane)

    assert _ended(topic) == [str(t.uuid) for t in first + second]


def test_a_lane_whose_resume_point_is_past_the_new_log_still_gets_a_turn(
    broker, slice_harness
):
    lane, topic = _lane_topic(slice_ms=2000)
    first = submit(topic, [{"n": n} for n in range(20)])
    publish_pending()
    runner = slice_harness()
    _drain(runner, lane)  # the lane resumes at 20 now
    broker.restart_empty()
    second = submit(topic, [{"n": n} for n in range(20, 23)])
    _publish_all(topic)  # the new log ends at 3, below the lane's resume point

    woken = runner.runner.scheduler.kick([topic])

    assert [turn.lane for turn in woken] == [lane]
    _drain(runner, lane)
    assert _ended(topic) == [str(t.uuid) for t in first + second]


class LockWatchingProducer:
    """The healing producer, noting for each batch whether the publisher's lock
    was held and whether the batch had to start a new librdkafka producer."""

    def __init__(self, url: str) -> None:
        self.inner = producer_for(url)
        self.batches: list[tuple[int, bool, bool]] = []  # (size, locked, renewed)

    def produce_batch(self, messages):
        before = self.inner._producer
        try:
            return self.inner.produce_batch(messages)
        finally:
            renewed = self.inner._producer is not before
            self.batches.append((len(messages), _publisher_lock_held(), renewed))


def _publisher_lock_held() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
            " AND ((classid::bigint << 32) | objid::bigint) = %s)",
            [PUBLISHER_LOCK_KEY],
        )
        return cursor.fetchone()[0]


def test_a_heal_renews_its_producer_before_it_takes_the_publishers_lock(
    broker, slice_harness
):
    """A producer renewed after an outage waits ~0.5 s for its producer id;
    the publisher and every other healing lane wait for that lock, so the slow
    part happens before it (topic check, one marker record no reader acts on)."""
    lane, topic = _lane_topic(slice_ms=2000)
    tasks = submit(topic, [{"n": n} for n in range(5)])
    producer = LockWatchingProducer(broker.url)
    producer.inner.produce_batch([])  # connected before the outage
    publish_pending()
    store = DatabaseLaneStore(
        process_batch=batch_process,
        heal=lambda **kw: lane_heal(**kw, producer=producer),
    )
    runner = slice_harness(store)
    broker.restart_empty()

    _drain(runner, lane)

    assert _ended(topic) == [str(t.uuid) for t in tasks]
    renewals = [batch for batch in producer.batches if batch[2]]
    assert renewals, producer.batches
    assert not any(locked for _, locked, _ in renewals), producer.batches
