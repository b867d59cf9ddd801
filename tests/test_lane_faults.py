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

from rotation.consumer import Record
from rotation.producer import ProduceError
from rotation.scheduler import EndReason
from tasks_app.models import LaneState, Slice, Task, TaskStatus
from tasks_app.services.execution import batch_process
from tasks_app.services.lanes import DatabaseLaneStore
from tests.handlers import runs
from tests.lane_harness import published_topic

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
    store = DatabaseLaneStore(batch_process)
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

    assert outcome.next_offset == first + 4 and outcome.processed == 1
    assert Task.objects.get(pk=task.pk).status == TaskStatus.SUCCEEDED
    skipped = [r.message for r in caplog.records if "skipping it" in r.message]
    assert len(skipped) == 3, skipped


class _FailingStore(DatabaseLaneStore):
    """The real store, failing once in `process` the way a service would."""

    def __init__(self, error: BaseException):
        super().__init__(batch_process)
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
        super().__init__(batch_process)
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
