"""Hand-offs (issue 11): who takes a lane's next turn, and in what order a
slice's end is written. In-process slice runners on the real stores
(tests/lane_harness.py); the wake-ups Celery would carry are collected."""

import dataclasses
import os

import pytest

from rotation.lanes import Lane
from rotation.store import EndReason
from rotation.turns import Turn
from tasks_app.models import LaneState, Slice
from tasks_app.services.execution import batch_process
from tasks_app.services.lane_store import DatabaseLaneStore
from tests.lane_harness import Harness, heal_here, published_topic

pytestmark = pytest.mark.django_db(transaction=True)


class _OneMessageSlices(DatabaseLaneStore):
    """The real store, whose slices each run one message and then reach their
    deadline: every slice but the last leaves work for a next turn."""

    def __init__(self) -> None:
        super().__init__(process_batch=batch_process, heal=heal_here())

    def process(self, lane, token, member, messages, *args, **kwargs):
        outcome = super().process(lane, token, member, messages[:1], *args, **kwargs)
        return dataclasses.replace(outcome, stop_reason="deadline")


def _queue(harness: Harness, lane: Lane) -> Turn:
    return harness.runner.turns.enqueue(f"lane:{lane}", lane)


def _slices(lane: Lane) -> list[tuple[str, str]]:
    rows = Slice.objects.filter(topic__name=lane.topic).order_by("started_at")
    return [(row.member, row.end_reason) for row in rows]


def _join(harness: Harness, member: str, *, idle: bool) -> None:
    """Add a live member; an idle one waits for a wake-up, a busy one does not."""
    harness.runner.members.beat(member, hostname="test", pid=os.getpid())
    if idle:
        harness.runner.members.mark_idle(member)


def test_the_only_live_member_runs_the_next_turns_in_process(slice_harness):
    lane, _ = published_topic(3)
    harness = slice_harness(_OneMessageSlices())
    wake = _queue(harness, lane)
    harness.sent.clear()

    record = harness.runner.run(wake)

    # One message per slice, then a slice that finds the lane drained: all in
    # this one call, without a single wake-up through Celery.
    assert _slices(lane) == [("m1", "deadline")] * 3 + [("m1", "drained")]
    assert record is not None
    assert record.end_reason == EndReason.DRAINED
    assert harness.sent == []
    assert LaneState.objects.get(topic__name=lane.topic).next_offset == 3


def test_a_member_ending_a_slice_takes_another_ready_lane_but_not_its_own(
    slice_harness,
):
    first, _ = published_topic(3)
    second, _ = published_topic(3)
    harness = slice_harness(_OneMessageSlices())
    _join(harness, "m2", idle=False)  # live, but busy with a turn of its own
    wake = _queue(harness, first)
    _queue(harness, second)
    harness.sent.clear()

    harness.runner.run(wake)

    # m1 ran one lane, then, with nobody idle, the other lane in process;
    # neither lane's next turn went to m1 again while m2 is live (take turns):
    # the lane it ran last is left to the shared queue, the other to the
    # wake-up already in flight for the chain m1 took in process.
    assert _slices(first) == [("m1", "deadline")]
    assert _slices(second) == [("m1", "deadline")]
    [(_last, member)] = [(turn.lane, turn.member) for turn in harness.sent]
    assert member == ""
    for lane in (first, second):
        queued = harness.runner.turns.queued(f"lane:{lane}")
        assert queued is not None
        assert queued.last_member == "m1"
        assert not queued.running


def test_an_idle_member_gets_the_next_turn_through_its_wake_up(slice_harness):
    lane, _ = published_topic(3)
    harness = slice_harness(_OneMessageSlices())
    _join(harness, "m2", idle=False)
    wake = _queue(harness, lane)
    harness.runner.members.mark_idle("m2")  # free by the time the slice ends
    harness.sent.clear()

    harness.runner.run(wake)

    assert _slices(lane) == [("m1", "deadline")]
    assert [(turn.lane, turn.member) for turn in harness.sent] == [(lane, "m2")]


def test_the_next_turn_is_queued_after_the_lane_is_settled_and_before_the_record(
    slice_harness,
):
    lane, _ = published_topic(3)
    harness = slice_harness(_OneMessageSlices())
    _join(harness, "m2", idle=False)
    wake = _queue(harness, lane)
    harness.runner.members.mark_idle("m2")  # free by the time the slice ends
    seen: list[tuple[bool, int]] = []

    def send(turn: Turn, delay_s: float) -> None:
        state = LaneState.objects.get(topic__name=lane.topic)
        seen.append(
            (state.settled, Slice.objects.filter(topic__name=lane.topic).count())
        )

    harness.runner.turns.send = send
    harness.runner.run(wake)

    # Settled first, so the next holder's claim does not take the last one for
    # dead (and run its first batch carefully); the record is written after.
    assert seen == [(True, 0)]
    assert _slices(lane) == [("m1", "deadline")]
