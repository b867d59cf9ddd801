"""Hand-offs (issue 11): who takes a lane's next turn, and in what order a
slice's end is written. In-process slice runners on the real stores
(tests/lane_harness.py); the wake-ups Celery would carry are collected."""

import dataclasses
import os

import pytest

from rotation.lanes import Lane
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


def _join(harness: Harness, member: str) -> None:
    """Add a live member, busy until it is marked idle."""
    harness.runner.members.beat(member, hostname="test", pid=os.getpid())


def test_an_idle_member_gets_the_next_turn_through_its_wake_up(slice_harness):
    lane, _ = published_topic(3)
    harness = slice_harness(_OneMessageSlices())
    _join(harness, "m2")
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
    _join(harness, "m2")
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
