"""Hand-offs (issue 11): who takes a lane's next turn, and in what order a
slice's end is written. In-process slice runners on the real stores
(tests/lane_harness.py); the wake-ups Celery would carry are collected."""

import dataclasses
import os
import re
import tempfile
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rotation.lanes import Lane
from rotation.turns import PASS_KEY, Turn
from tasks_app.models import ConsumerGroup, LaneState, Slice, Task, Topic
from tasks_app.services.execution import batch_process
from tasks_app.services.lane_store import DatabaseLaneStore
from tasks_app.services.topics import topic_set_paused
from tasks_app.worker import runtime
from tests.lane_harness import Harness, heal_here, lane_store, published_topic

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


def _early_turns_run_by(
    member: Harness, *, sent_by: Harness, answers: list
) -> list[threading.Thread]:
    """Have `member` run each turn `sent_by` queues early, in a thread of its
    own (as another worker would); each run's answer lands in `answers`. Every
    turn sent is also kept in `sent_by.sent`."""
    threads: list[threading.Thread] = []

    def send(turn: Turn, delay_s: float) -> None:
        def run() -> None:
            try:
                answers.append(member.runner.run(turn))
            finally:
                connection.close()

        sent_by.sent.append(turn)
        if turn.after_release:
            threads.append(threading.Thread(target=run))
            threads[-1].start()

    sent_by.runner.turns.send = send
    return threads


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


class _AssignmentAtClaim(DatabaseLaneStore):
    """The real store, noting what the member's consumer is assigned to at the
    moment of each fenced claim."""

    def __init__(self) -> None:
        super().__init__(process_batch=batch_process, heal=heal_here())
        self.harness: Harness | None = None
        self.seen: list[list[tuple[str, int, int]]] = []

    def claim(self, lane, token):
        consumer = self.harness.runner.consumers.get(lane.group)._consumer
        self.seen.append(
            [(tp.topic, tp.partition, tp.offset) for tp in consumer.assignment()]
        )
        return super().claim(lane, token)


def test_the_next_turn_says_where_the_slice_stopped(slice_harness):
    lane, _ = published_topic(3)
    harness = slice_harness(_OneMessageSlices())

    harness.run_turn(lane)

    [turn] = harness.sent
    assert turn.resume_from == 1


def test_the_next_member_starts_fetching_there_before_its_fenced_claim(
    slice_harness,
):
    """The first fetch is the longest step of a hand-off: it runs while the
    lease and the fenced claim are taken."""
    lane, _ = published_topic(3)
    store = _AssignmentAtClaim()
    store.harness = harness = slice_harness(store)
    turn = harness.runner.turns.enqueue(f"lane:{lane}", lane, resume_from=0)

    harness.runner.run(turn)

    assert store.seen == [[(lane.topic, lane.partition, 0)]]


class _ConsumerAtClaim(DatabaseLaneStore):
    """The real store, noting which consumer the member reads with at each claim."""

    def __init__(self) -> None:
        super().__init__(process_batch=batch_process, heal=heal_here())
        self.harness: Harness | None = None
        self.seen: list[object] = []

    def claim(self, lane, token):
        self.seen.append(self.harness.runner.consumers.get(lane.group))
        return super().claim(lane, token)


def test_a_members_next_slice_reads_with_the_groups_other_consumer(slice_harness):
    """The consumer a slice ends with may still wait on a fetch the broker
    holds; the next slice's first fetch must not queue behind it."""
    lane, _ = published_topic(3)
    store = _ConsumerAtClaim()
    store.harness = harness = slice_harness(store)

    for _ in range(3):
        harness.run_turn(lane)

    first, second, third = store.seen
    assert second is not first
    assert third is first


@pytest.mark.parametrize("hint", [0, 2, 3])
def test_the_fenced_resume_point_decides_where_reading_starts(slice_harness, hint):
    """A hint that is wrong (a turn queued before a slice that ran on) neither
    runs a task twice nor skips one."""
    lane, tasks = published_topic(4)
    harness = slice_harness(_OneMessageSlices())
    harness.run_turn(lane)  # runs the first task only; the lane resumes at 1

    turn = harness.runner.turns.enqueue(f"lane:{lane}", lane, resume_from=hint)
    harness.runner.run(turn)

    attempts = [
        Task.objects.get(pk=task.pk).attempts for task in tasks
    ]  # the second slice runs exactly the second task
    assert attempts == [1, 1, 0, 0]


def _policy_reads(statements: list[dict]) -> int:
    return sum('"tasks_app_consumergroup"."walk_mode"' in q["sql"] for q in statements)


def test_a_member_that_held_the_lane_before_reads_no_policy_before_its_lease(
    slice_harness,
):
    """The fenced claim answers the topic's current policy; the member keeps
    it, and the next time it takes the lane it needs no read of its own."""
    lane, _ = published_topic(3)
    harness = slice_harness(_OneMessageSlices())
    harness.run_turn(lane)
    [turn] = harness.sent

    with CaptureQueriesContext(connection) as queries:
        harness.runner.run(turn)

    assert _policy_reads(queries.captured_queries) == 0
    assert _slices(lane) == [("m1", "deadline"), ("m1", "deadline")]


def test_a_pause_made_between_turns_stops_the_lane_at_its_next_claim(slice_harness):
    lane, tasks = published_topic(3)
    harness = slice_harness(_OneMessageSlices())
    harness.run_turn(lane)
    [turn] = harness.sent
    topic_set_paused(topic=Topic.objects.get(name=lane.topic), paused=True)
    harness.sent.clear()

    harness.runner.run(turn)

    assert _slices(lane) == [("m1", "deadline"), ("m1", "paused")]
    assert harness.sent == []  # the chain stops until the topic is resumed
    assert [Task.objects.get(pk=t.pk).attempts for t in tasks] == [1, 0, 0]
    assert LaneState.objects.get(topic__name=lane.topic).settled


def test_a_lane_its_group_no_longer_reads_stops_at_its_next_claim(slice_harness):
    lane, tasks = published_topic(3)
    harness = slice_harness(_OneMessageSlices())
    harness.run_turn(lane)
    [turn] = harness.sent
    ConsumerGroup.objects.get(group_id=lane.group).topics.remove(
        Topic.objects.get(name=lane.topic)
    )
    harness.sent.clear()

    harness.runner.run(turn)

    assert harness.sent == []
    assert [Task.objects.get(pk=t.pk).attempts for t in tasks] == [1, 0, 0]


def test_the_lane_is_settled_before_its_lease_is_released(slice_harness):
    """The next holder can take the lease the moment it is released; settling
    first takes that step off the hand-off, and a holder that dies after it
    has already run and recorded everything its slice read."""
    lane, _ = published_topic(3)
    harness = slice_harness(_OneMessageSlices())
    leases = harness.runner.leases
    settled_at_release: list[bool] = []
    release = leases.release

    def noting_release(lease, **kwargs):
        state = LaneState.objects.get(topic__name=lane.topic)
        settled_at_release.append(state.settled)
        return release(lease, **kwargs)

    leases.release = noting_release

    harness.run_turn(lane)

    assert settled_at_release == [True]


def test_a_worker_keeps_one_runner_per_member_so_its_policies_outlive_a_turn():
    """Celery runs each turn as a new task: the runner holding the policies a
    member's claims answered must be the same from one turn to the next, or
    the read the test above saves happens on every turn."""
    state = runtime()

    assert state.runner("m1@test") is state.runner("m1@test")
    assert state.runner("m2@test") is not state.runner("m1@test")
    assert state.runner("m2@test").member == "m2@test"


# A message in libpq's protocol trace: direction, length, kind.
_MESSAGE_KIND = re.compile(r"^[FB]\t\d+\t(\w+)", re.MULTILINE)


def test_a_claim_costs_one_round_trip_to_postgresql():
    """The next holder waits for its claim, and the lane with it: the claim
    and its lock timeout are one statement, its own transaction, answered in
    one round trip (BEGIN, the limits, the claim and COMMIT were four). So
    PostgreSQL never waits on the client while the claim holds the lane's row:
    a claimant frozen mid-claim keeps no lock."""
    from psycopg.pq import Trace

    lane, _ = published_topic(1)
    store = lane_store()
    store.ref(lane)  # the lane's row keys, read once per store
    store.claim(lane, 1)  # the connection is open and checked
    pgconn = connection.connection.pgconn
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)
        try:
            claim = store.claim(lane, 2)
        finally:
            pgconn.untrace()
        trace.seek(0)
        messages = _MESSAGE_KIND.findall(trace.read())

    assert claim.next_offset == 0
    assert LaneState.objects.get(topic__name=lane.topic).epoch == 2
    assert messages.count("ReadyForQuery") == 1, messages
    assert messages.count("Sync") == 1, messages
    assert messages.count("Execute") == 1, messages


def test_a_wake_up_shows_its_turn_in_one_short_line():
    """Celery shows a task's arguments to monitors (Flower, events) as
    `argsrepr`, by default a safe repr of the whole turn built for every
    wake-up on the hand-off's path; a short line naming the turn and its lane
    says what a monitor needs, and costs less to build."""
    from celery import current_app
    from celery.signals import before_task_publish
    from celery.utils.nodenames import worker_direct

    sent: list[dict] = []

    def note(headers: dict, **_: object) -> None:
        sent.append(headers)

    lane = Lane("default", "orders", 3)
    turn = Turn(chain=f"lane:{lane}", id="f" * 32, lane=lane, member="m9@test",
                queued_at=0.0, resume_from=41)  # fmt: skip
    before_task_publish.connect(note, weak=False)
    try:
        runtime().turns.send(turn, 0.0)  # as a hand-off sends it
    finally:
        before_task_publish.disconnect(note)
        with current_app.connection_for_write() as broker:
            broker.default_channel.client.delete(worker_direct(turn.member).name)

    assert [headers["argsrepr"] for headers in sent] == [
        f"turn {'f' * 32} on default/orders/3 from offset 41"
    ]


def test_a_claim_inside_a_transaction_is_refused_as_a_bug_not_a_database_failure():
    """The claim commits on its own. Called inside `atomic()` it would hold the
    lane's row until the caller commits, so it refuses, and says so: not as
    "PostgreSQL failed, check the database server"."""
    from django.db import transaction

    lane, _ = published_topic(1)
    store = lane_store()
    refused = pytest.raises(RuntimeError, match=r"outside transaction\.atomic")
    with refused, transaction.atomic():
        store.claim(lane, 1)
    assert not LaneState.objects.filter(topic__name=lane.topic).exists()


def _slow_topic(count: int) -> tuple[Lane, list[Task]]:
    """A topic whose tasks take 20 ms each and whose slices last 200 ms: a
    slice reaches its deadline with work left."""
    return published_topic(count, slice_ms=200, sleep_ms=20)


def test_the_next_turn_is_queued_while_the_slice_still_holds_the_lease(
    slice_harness,
):
    """The wake-up's trip through Celery is off the hand-off: the next member
    is on its way while the slice runs its last handlers."""
    lane, _ = _slow_topic(30)
    harness = slice_harness()
    _join(harness, "m2")
    wake = _queue(harness, lane)
    harness.runner.members.mark_idle("m2")
    holders: list[str | None] = []

    def send(turn: Turn, delay_s: float) -> None:
        harness.sent.append(turn)
        holders.append(harness.runner.leases.holder(lane))

    harness.runner.turns.send = send
    harness.sent.clear()
    record = harness.runner.run(wake)

    assert record.end_reason == "deadline"
    [turn] = harness.sent
    assert (turn.member, turn.after_release) == ("m2", True)
    [holder] = holders  # the lease's value when the turn was sent: still ours
    assert holder.startswith(f"{record.token}:m1:")


def test_the_member_woken_early_waits_for_the_release_and_reads_on_from_there(
    slice_harness,
):
    lane, tasks = _slow_topic(30)
    first = slice_harness()
    second = slice_harness(member="m2", fresh=False)
    second.runner.members.mark_idle("m2")
    records: list = []
    wake = _queue(first, lane)
    threads = _early_turns_run_by(second, sent_by=first, answers=records)
    records.append(first.runner.run(wake))
    threads[0].join(30)

    before, after = records
    assert after.member == "m2"
    assert after.token > before.token
    assert after.first_offset == before.next_offset
    ran = before.messages + after.messages
    attempts = [Task.objects.get(pk=task.pk).attempts for task in tasks]
    assert attempts == [1] * ran + [0] * (len(tasks) - ran)


def test_a_member_woken_early_that_shuts_down_leaves_the_lane_to_the_holder(
    slice_harness,
):
    """Its worker's warm shutdown ends its wait: it takes no lease, and the
    holder, finding the early turn given up, queues the lane's next turn.

    The holder looks only once the woken member has given up: which comes
    first is a race otherwise (the test failed 3 times in 8 alone so)."""
    lane, _ = _slow_topic(30)
    first = slice_harness()
    second = slice_harness(member="m2", fresh=False)
    second.runner.members.mark_idle("m2")
    second.runner.shutdown.set()
    answers: list = []
    wake = _queue(first, lane)
    first.sent.clear()
    threads = _early_turns_run_by(second, sent_by=first, answers=answers)
    after_slice = first.runner.scheduler.after_slice

    def after_the_give_up(*args, **kwargs):
        threads[0].join(30)
        return after_slice(*args, **kwargs)

    first.runner.scheduler.after_slice = after_the_give_up
    first.runner.run(wake)
    threads[0].join(30)

    assert answers == [None]
    assert [member for member, _ in _slices(lane)] == ["m1"]
    assert [turn.after_release for turn in first.sent] == [True, False]
    assert first.runner.turns.queued(f"lane:{lane}").id == first.sent[-1].id


def test_a_member_woken_early_that_shuts_down_after_the_holder_looked_passes_it_on(
    slice_harness,
):
    """The holder found its early turn still queued and left it there; the
    woken member's worker then shuts down before taking the lease. The turn
    goes to another member at once: dropped, the lane would wait for the
    watchdog, two ticks or more."""
    lane, _ = _slow_topic(30)
    first = slice_harness()
    second = slice_harness(member="m2", fresh=False)
    wake = _queue(first, lane)
    second.runner.members.mark_idle("m2")
    first.sent.clear()
    first.runner.run(wake)  # the holder looks at its slice's end: still queued
    [early] = first.sent
    assert early.member == "m2"
    second.runner.shutdown.set()

    assert second.runner.run(early) is None

    [passed_on] = second.sent
    queued = second.runner.turns.queued(f"lane:{lane}")
    assert queued.id == passed_on.id
    # m1, idle since its slice ended, is the member left to wake.
    assert (queued.member, queued.running, queued.after_release) == ("m1", False, True)
    assert [member for member, _ in _slices(lane)] == ["m1"]


def test_a_turn_queued_early_whose_member_gave_up_is_queued_again_at_the_end(
    slice_harness,
):
    """The woken member stops waiting after one lease TTL (its turn is then
    finished); the holder, still running its last handler, queues the turn."""
    lane, _ = _slow_topic(30)
    harness = slice_harness()
    turns = harness.runner.turns

    def give_up(turn: Turn, delay_s: float) -> None:
        harness.sent.append(turn)
        if turn.after_release:
            turns.finish(turns.claim(turn, "m2"))

    wake = turns.enqueue(f"lane:{lane}", lane)
    harness.sent.clear()
    turns.send = give_up
    harness.runner.run(wake)

    assert [turn.after_release for turn in harness.sent] == [True, False]
    assert turns.queued(f"lane:{lane}").id == harness.sent[-1].id


def test_a_slice_queued_early_is_charged_its_whole_length_by_its_next_claim(
    slice_harness,
):
    """Its last moments are charged after its next turn was queued; the claim
    of that turn takes the chain's virtual time from the ready set, so the
    charge must reach it there too, or the chain runs on credit."""
    lane, _ = _slow_topic(30)
    harness = slice_harness()
    turns = harness.runner.turns

    record = harness.run_turn(lane)
    [early] = harness.sent
    assert early.after_release
    turns.finish(turns.claim(early, "m2"))

    charged = float(harness.client.hget(PASS_KEY, f"lane:{lane}"))
    assert charged == pytest.approx(record.ended_at - record.started_at)


class _BatchesNoted(DatabaseLaneStore):
    """The real store, noting the offsets of each batch it is handed."""

    def __init__(self) -> None:
        super().__init__(process_batch=batch_process, heal=heal_here())
        self.offsets: list[int] = []

    def process(self, lane, token, member, messages, *args, **kwargs):
        self.offsets += [message.offset for message in messages]
        return super().process(lane, token, member, messages, *args, **kwargs)


def test_queueing_the_next_turn_early_hands_no_message_to_the_store_twice(
    slice_harness,
):
    """Each message handed over has its task loaded: a batch cut at the
    closing point and handed over again cost a hand-off a load of 500 tasks
    that ran none (bench, --slice-ms 100)."""
    lane, _ = _slow_topic(30)
    store = _BatchesNoted()
    harness = slice_harness(store)

    record = harness.run_turn(lane)

    assert harness.sent[0].after_release  # it was queued early
    assert len(store.offsets) == len(set(store.offsets)), store.offsets
    assert record.messages > 0
