"""A lane whose next task waits for its retry does not hold a worker asleep.

When the retry is due only after the slice's end, the slice ends at once
(`retry_wait`) and the lane's next turn is queued for when the retry is due:
the member is free for other lanes meanwhile. In-process slice runners on the
real stores (tests/lane_harness.py); the wake-ups Celery would carry are
collected, with the delay each was sent with.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from rotation.lanes import Lane
from tasks_app.models import Task, TaskStatus
from tests.handlers import runs
from tests.lane_harness import keyed_topic

pytestmark = pytest.mark.django_db(transaction=True)

BACKOFF_MS = 5000
SLICE_MS = 1000


def _topic(messages: list[tuple[str, dict]], **policy: object) -> Lane:
    """A fresh topic of (key, message) pairs whose retries wait longer than a
    slice lasts."""
    return keyed_topic(
        messages, slice_ms=SLICE_MS, retry_backoff_ms=BACKOFF_MS, **policy
    )


@pytest.mark.parametrize("key_concurrency", [1, 2])
def test_a_retry_due_after_the_slice_ends_it_and_delays_the_lanes_next_turn(
    slice_harness, key_concurrency
):
    lane = _topic(
        [("a", {"fail_attempts": 1}), ("a", {"n": 1})],
        key_concurrency=key_concurrency,
    )
    harness = slice_harness()
    turns = harness.runner.turns
    wake = turns.enqueue(f"lane:{lane}", lane)
    delays: list[float] = []
    turns.send = lambda turn, delay_s: delays.append(delay_s)

    record = harness.runner.run(wake)

    assert record.end_reason == "retry_wait"
    assert record.messages == 0
    # The retry is due 5 s after the failure; the slice ended right after it.
    assert SLICE_MS / 1000 < record.wait_s <= BACKOFF_MS / 1000
    assert delays == [record.wait_s]  # the next turn waits for the retry
    first, second = Task.objects.filter(topic__name=lane.topic).order_by("offset")
    assert (first.status, first.attempts) == (TaskStatus.FAILED, 1)
    assert second.status == TaskStatus.PUBLISHED  # order holds: it waits too
    assert [e["phase"] for e in runs(lane.topic)] == ["start", "fail"]


def test_a_retry_due_within_the_slice_is_waited_for_in_it(slice_harness):
    lane = _topic([("a", {"n": 0}), ("a", {"n": 1})])
    head = Task.objects.filter(topic__name=lane.topic).order_by("offset").first()
    # It failed long enough ago that its retry is due 0.2 s into the slice.
    failed_at = timezone.now() - timedelta(milliseconds=BACKOFF_MS - 200)
    Task.objects.filter(pk=head.pk).update(
        status=TaskStatus.FAILED, attempts=1, finished_at=failed_at
    )

    record = slice_harness().run_turn(lane)

    assert record.end_reason == "drained"
    assert record.messages == 2
    assert Task.objects.get(pk=head.pk).attempts == 2
