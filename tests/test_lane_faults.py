"""Fault paths of one slice, driven in process against real PostgreSQL, Redis, Kafka.

Each test injects one fault at an exact point of a slice and checks that the
lane is left able to move on: lease released, slice recorded, next turn queued,
nothing run out of order or lost.
"""

import json
import logging

import pytest
import redis
from django.db import InterfaceError, connection

from rotation.kafka.consumer import Record
from rotation.kafka.producer import ProduceError
from rotation.store import EndReason, StoreUnavailable
from tasks_app.models import LaneState, Slice, Task, TaskStatus
from tasks_app.services.execution import batch_process
from tasks_app.services.lane_store import DatabaseLaneStore
from tests.handlers import runs
from tests.lane_harness import heal_here, lane_store, published_topic

pytestmark = pytest.mark.django_db(transaction=True)


def _record(task: Task, *, headers: dict[str, bytes] | None = None) -> Record:
    envelope = {"task_id": str(task.uuid), "message": task.message}
    return Record(
        topic=task.topic.name,
        partition=task.partition or 0,
        offset=task.offset or 0,
        value=json.dumps(envelope).encode(),
        headers={"task_id": str(task.uuid).encode()} if headers is None else headers,
        timestamp_ms=0,
    )


def _foreign(topic: str, offset: int, headers: dict[str, bytes], value: bytes):
    return Record(topic, 0, offset, value, headers, 0)


def test_messages_with_a_malformed_or_missing_task_id_are_skipped_with_a_log_line(
    caplog,
):
    lane, [task] = published_topic(1)
    store = lane_store()
    store.claim(lane, 1)
    first = task.offset
    # An outside producer wrote to the topic: no envelope, a bad id, no headers.
    messages = [
        _foreign(lane.topic, first, {"task_id": b"not-a-uuid"}, b"{}"),
        _foreign(lane.topic, first + 1, {}, b"plain text, not JSON"),
        _foreign(lane.topic, first + 2, {"task_id": b"\xff\xfe"}, b"{}"),
        _record(task),
    ]
    messages[-1] = Record(**{**messages[-1].__dict__, "offset": first + 3})
    Task.objects.filter(pk=task.pk).update(offset=first + 3)

    with caplog.at_level(logging.WARNING, logger="tasks_app.services.execution"):
        outcome = store.process(lane, 1, "m1", messages, 1e18, lambda: False)

    assert outcome.next_offset == first + 4
    assert outcome.processed == 1
    assert Task.objects.get(pk=task.pk).status == TaskStatus.SUCCEEDED
    skipped = [r.message for r in caplog.records if "skipping it" in r.message]
    assert len(skipped) == 3, skipped


class _FailingStore(DatabaseLaneStore):
    """The real store, failing once in `process` the way a service would."""

    def __init__(self, error: BaseException):
        super().__init__(process_batch=batch_process, heal=heal_here())
        self.error = error

    def process(self, *args, **kwargs):
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        ProduceError("127.0.0.1:1", "is unreachable", failed=1),
        redis.ConnectionError("Redis went away"),
        InterfaceError("connection already closed"),
        ValueError("a bug"),
    ],
    ids=["kafka-produce", "redis", "django-interface", "bug"],
)
def test_any_error_in_a_slice_still_releases_records_and_hands_the_lane_on(
    error, slice_harness
):
    lane, _ = published_topic(3)
    runner = slice_harness(_FailingStore(error))

    record = runner.run_turn(lane)

    assert record.end_reason == EndReason.ERROR
    assert runner.runner.leases.holder(lane) is None, "the lease was released"
    assert Slice.objects.filter(topic__name=lane.topic, end_reason="error").exists()
    assert [turn.lane for turn in runner.sent] == [lane], "the next turn was queued"


class _ConnectionDropStore(DatabaseLaneStore):
    """The real store, whose database connection dies under it once (a restart)."""

    def __init__(self):
        super().__init__(process_batch=batch_process, heal=heal_here())
        self.dropped = False

    def process(self, *args, **kwargs):
        if not self.dropped:
            self.dropped = True
            connection.connection.close()  # the server went away under Django
        return super().process(*args, **kwargs)


def test_a_lost_database_connection_mid_slice_ends_it_and_the_next_slice_resumes(
    slice_harness,
):
    lane, tasks = published_topic(3, handler="tests.handlers.record")
    runner = slice_harness(_ConnectionDropStore())

    record = runner.run_turn(lane)

    assert record.end_reason == EndReason.ERROR
    assert runner.runner.leases.holder(lane) is None
    assert Slice.objects.filter(topic__name=lane.topic, end_reason="error").exists()
    assert [turn.lane for turn in runner.sent] == [lane]
    assert runner.run_turn(lane).end_reason == EndReason.DRAINED
    assert [r["task"] for r in runs(lane.topic) if r["phase"] == "end"] == [
        str(t.uuid) for t in tasks
    ]
    assert LaneState.objects.get(topic__name=lane.topic).next_offset == 3


def test_a_task_dying_while_kafka_is_down_is_recorded_and_its_dead_letter_sent_later(
    slice_harness, settings
):
    from tests.kafka_read import read_topic
    from tests.publishing_helpers import publish_pending

    lane, [task] = published_topic(1, handler="tests.handlers.record", max_attempts=1)
    Task.objects.filter(pk=task.pk).update(message={"fail_attempts": 1})
    broker = settings.KAFKA_BOOTSTRAP_SERVERS
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"  # Kafka down for producers

    record = slice_harness().run_turn(lane)

    assert record.end_reason == EndReason.DRAINED
    assert Task.objects.get(pk=task.pk).status == TaskStatus.DEAD
    settings.KAFKA_BOOTSTRAP_SERVERS = broker
    publish_pending()
    [letter] = read_topic(f"{lane.topic}.dlq", expected=1)
    assert dict(letter.headers())["task_id"].decode() == str(task.uuid)
    assert "planned failure" in dict(letter.headers())["error"].decode()


def test_a_holder_frozen_inside_its_fenced_write_blocks_the_next_claim_only_briefly(
    settings,
):
    import threading

    from tasks_app.services.lane_state import lane_fenced

    settings.SCHEDULER_LEASE_GRACE_MS = 500
    lane, _ = published_topic(1)
    store = lane_store()
    store.claim(lane, 1)
    ref = store.ref(lane)
    frozen, thaw = threading.Event(), threading.Event()
    outcome: list[str] = []

    def holder_freezes_mid_write() -> None:
        try:
            with lane_fenced(ref=ref, token=1) as cursor:
                frozen.set()
                thaw.wait(60)  # SIGSTOP between the fence check and COMMIT
                cursor.execute("SELECT 1")
            outcome.append("committed")
        except Exception as exc:  # noqa: BLE001 - the test reports what happened
            outcome.append(type(exc).__name__)
        finally:
            connection.close()

    thread = threading.Thread(target=holder_freezes_mid_write)
    thread.start()
    try:
        assert frozen.wait(10)
        resumed_at = store.claim(lane, 2).next_offset  # the next holder's claim
        assert not thaw.is_set(), "the claim went through while the holder was frozen"
    finally:
        thaw.set()
        thread.join(30)
    assert resumed_at == 0
    assert outcome, "the frozen holder never finished"
    assert outcome[0] != "committed", "the frozen holder wrote late"


def test_a_claim_kept_waiting_for_the_lanes_row_gives_up_and_the_next_one_works(
    settings,
):
    """A claim kept waiting past its lock timeout ends as a store failure and
    leaves the connection usable for the next one."""
    import psycopg

    from tests.cluster import worker_database_url

    settings.SCHEDULER_LEASE_GRACE_MS = 200  # the claim waits 400 ms for a lock
    lane, _ = published_topic(1)
    store = lane_store()
    store.claim(lane, 1)
    ref = store.ref(lane)
    with psycopg.connect(worker_database_url()) as other:  # holds the row, no limits
        other.execute(
            "SELECT 1 FROM tasks_app_lanestate WHERE topic_id = %s FOR UPDATE",
            [ref.topic_pk],
        )
        with pytest.raises(StoreUnavailable, match="lock timeout"):
            store.claim(lane, 2)
    assert store.claim(lane, 3).next_offset == 0
    assert LaneState.objects.get(topic__name=lane.topic).epoch == 3


def test_database_sessions_use_tcp_keepalives_on_both_ends(db):
    from django.conf import settings

    wanted = settings.DATABASE_KEEPALIVE
    with connection.cursor() as cursor:
        cursor.execute("SHOW tcp_keepalives_idle")
        server_idle = cursor.fetchone()[0]
    client_dsn = connection.connection.info.dsn
    assert server_idle in (f"{wanted['idle']}", f"{wanted['idle']}s")
    assert "keepalives=1" in client_dsn
    assert f"keepalives_idle={wanted['idle']}" in client_dsn


def _lease_taken_by_m2(leases, lane) -> None:
    """The holder's lease expired and member m2 took the lane."""
    leases.client.delete(lane.key("lease"))
    assert leases.acquire(lane, owner="m2", ttl_ms=60_000) is not None


class _FrozenInClaimStore(DatabaseLaneStore):
    """The real store, whose claim outlives the lease: the holder froze inside the
    claim's transaction, another member took the lane, and PostgreSQL ended the
    frozen transaction (its idle-in-transaction limit)."""

    def __init__(self, leases):
        super().__init__(process_batch=batch_process, heal=heal_here())
        self.leases = leases

    def claim(self, lane, token):
        _lease_taken_by_m2(self.leases, lane)
        raise StoreUnavailable(
            "PostgreSQL failed during claim: terminating connection due to "
            "idle-in-transaction timeout; check the database server"
        )


class _LeaseTakenMidSliceStore(DatabaseLaneStore):
    """The real store; during its first batch the lease expires and another member
    takes the lane, yet nothing fails: the slice reaches its end as usual (a
    holder frozen between two checks, then resumed)."""

    def __init__(self, leases):
        super().__init__(process_batch=batch_process, heal=heal_here())
        self.leases = leases

    def process(self, lane, *args, **kwargs):
        holder = self.leases.holder(lane)
        if holder and ":m2:" not in holder:
            _lease_taken_by_m2(self.leases, lane)
        return super().process(lane, *args, **kwargs)


@pytest.mark.parametrize(
    "store",
    [_FrozenInClaimStore, _LeaseTakenMidSliceStore],
    ids=["a-service-failed-after", "nothing-failed"],
)
def test_a_slice_whose_lease_went_before_it_ended_ends_lease_lost(store, slice_harness):
    lane, _ = published_topic(3)
    runner = slice_harness()
    runner.runner.store = store(runner.runner.leases)

    record = runner.run_turn(lane)

    assert record.end_reason == EndReason.LEASE_LOST
    assert ":m2:" in runner.runner.leases.holder(lane), "not released"
    assert runner.sent == [], "the new holder queues the next turn, not this one"


def test_a_redis_that_lost_its_token_counters_costs_one_turn_not_a_lease(
    slice_harness,
):
    """Redis restarted empty: its counter hands out a token below the epoch the
    database recorded, so the first claim is fenced. That holder still owns the
    Redis lease: it moves the counter past the epoch, gives the lease back and
    queues the lane's next turn at once, instead of keeping the lease until it
    expires (and the lane idle until the watchdog's next tick)."""
    lane, tasks = published_topic(3)
    lane_store().claim(lane, 7)  # seven holders before Redis lost its data
    runner = slice_harness()

    fenced = runner.run_turn(lane)

    assert fenced.end_reason == EndReason.TOKEN_RESET
    assert runner.runner.leases.holder(lane) is None, "lease not given back"
    assert [turn.lane for turn in runner.sent] == [lane], "next turn not queued"
    resumed = runner.runner.run(runner.sent[0])
    assert resumed.token > 7
    assert resumed.messages == 3
    statuses = set(
        Task.objects.filter(pk__in=[t.pk for t in tasks]).values_list(
            "status", flat=True
        )
    )
    assert statuses == {TaskStatus.SUCCEEDED}
