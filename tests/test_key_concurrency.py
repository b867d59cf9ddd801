"""Per-key concurrency inside a lane (topic setting `key_concurrency`).

Slices run in this process on the real stores (tests/lane_harness.py); the
handler (tests/handlers.record) notes its starts and ends in Redis, so a test
can check each key's order and that different keys overlapped. No timings are
asserted: only orders and counts.
"""

import time

import pytest

from rotation.lanes import Lane
from tasks_app.models import DeadLetter, Task, TaskStatus
from tests.handlers import runs
from tests.key_order import KEYS, assert_each_key_in_order, overlapping_keys
from tests.lane_harness import harness, keyed_topic

pytestmark = pytest.mark.django_db(transaction=True)


def run_until_finished(lane: Lane, *, turns: int = 60) -> None:
    """Run turns of the lane until every task of its topic is finished, each
    after the delay the one before asked for (a retry or rate limit wait)."""
    runner = harness()
    try:
        for _ in range(turns):
            if not Task.objects.filter(topic__name=lane.topic).exclude(
                status__in=[TaskStatus.SUCCEEDED, TaskStatus.DEAD]
            ):
                return
            record = runner.run_turn(lane)
            if record is not None and record.wait_s:
                time.sleep(record.wait_s)  # the turn's delay, as Celery holds it
        raise AssertionError(f"{lane} did not finish in {turns} turns")
    finally:
        runner.close()


def test_different_keys_overlap_and_each_key_keeps_its_order():
    per_key = 40
    messages = [(KEYS[n % 4], {"n": n, "sleep_ms": 20}) for n in range(4 * per_key)]
    lane = keyed_topic(messages, key_concurrency=8)

    run_until_finished(lane)

    assert set(
        Task.objects.filter(topic__name=lane.topic).values_list("status", flat=True)
    ) == {TaskStatus.SUCCEEDED}
    assert_each_key_in_order(lane.topic)
    assert len(overlapping_keys(lane.topic)) >= 3
    starts = [e for e in runs(lane.topic) if e["phase"] == "start"]
    assert len(starts) == 4 * per_key  # nothing ran twice


def test_one_key_at_a_time_is_todays_behaviour():
    messages = [(KEYS[n % 4], {"n": n, "sleep_ms": 5}) for n in range(40)]
    lane = keyed_topic(messages)  # key_concurrency defaults to 1

    run_until_finished(lane)

    assert overlapping_keys(lane.topic) == set()
    ends = [e["offset"] for e in runs(lane.topic) if e["phase"] == "end"]
    assert ends == sorted(ends)


def test_a_key_waiting_for_its_retry_does_not_hold_up_other_keys():
    # alpha's first task fails once and waits 5 s for its retry; the other keys'
    # tasks (within one batch of it) run meanwhile. charlie's first task ends
    # dead; charlie's later tasks still run, after it.
    messages = [
        ("alpha", {"fail_attempts": 1}),
        ("charlie", {"fail_attempts": 5}),
        *[(KEYS[1 + n % 3], {"n": n}) for n in range(30)],
        ("alpha", {"n": "after"}),
    ]
    lane = keyed_topic(
        messages,
        key_concurrency=4,
        retry_backoff_ms=5000,
        max_attempts=2,
        slice_ms=3000,
    )

    run_until_finished(lane)

    events = runs(lane.topic)
    tasks = list(Task.objects.filter(topic__name=lane.topic).order_by("offset"))
    alpha_first, charlie_first = tasks[0], tasks[1]
    assert alpha_first.status == TaskStatus.SUCCEEDED
    assert alpha_first.attempts == 2
    assert charlie_first.status == TaskStatus.DEAD
    assert DeadLetter.objects.filter(task=charlie_first).exists()
    retry_at = next(
        i
        for i, e in enumerate(events)
        if e["task"] == str(alpha_first.uuid) and e["attempt"] == 2
    )
    others = {str(t.uuid) for t in tasks if t.key in ("bravo", "delta")}
    others_done = [
        i for i, e in enumerate(events) if e["task"] in others and e["phase"] == "end"
    ]
    assert len(others_done) == len(others)
    assert max(others_done) < retry_at  # bravo and delta did not wait for alpha
    assert_each_key_in_order(lane.topic)
    assert {t.status for t in tasks[2:]} == {TaskStatus.SUCCEEDED}
