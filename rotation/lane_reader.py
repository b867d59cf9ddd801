"""Reading one lane during a slice: poll in order, hand batches over, know when to stop.

A LaneReading lives for one slice. It reads the lane's partition from the
fenced resume point up to how far the lane may read (the recorded end of its
log), hands each batch to the store (which runs the handlers and records the
outcomes under the fence), mirrors the resume point in Kafka, and stops at the
deadline, when drained, paused, fenced, shut down, or when Kafka lost the log.
Shortly before the deadline it calls `on_closing` once: the lane's next turn is
queued then, so its member is waiting for the lease when the slice ends.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rotation.kafka.consumer import LaneConsumer, LogGone, Record
from rotation.lanes import Lane
from rotation.lease import Lease, LeaseKeeper
from rotation.log_check import STALL_S, log_loss
from rotation.rate_limit import RateLimit, RateLimiter
from rotation.store import BatchOutcome, EndReason, LaneClaim, LaneStore

# How often a running slice re-reads its topic's policy (to notice a pause).
POLICY_CHECK_S = 0.25
# A slice's first batch is small so its first handler starts sooner: a batch's
# tasks are loaded before any runs (idle stack: 20 in 1.0 ms, 400 in 7.6 ms).
FIRST_BATCH = 20
# How long before the deadline `on_closing` is called: more than a wake-up takes
# to reach an idle member under load (sent, delivered, claimed: about 5 ms).
CLOSING_LEAD_S = 0.02


@dataclass
class Progress:
    """What a slice has done so far."""

    next_offset: int
    careful_until: int = 0
    messages: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    # Rate limited: until enough tokens are back; a retry: until it is due.
    wait_s: float = 0.0

    def add(self, batch: list[Record], outcome: BatchOutcome) -> None:
        """Count a processed batch."""
        if outcome.processed:
            if self.first_offset is None:
                self.first_offset = batch[0].offset
            # A batch that left a waiting task behind ran up to its end.
            last = outcome.next_offset - 1 if outcome.stop_reason else batch[-1].offset
            if self.last_offset is None or last > self.last_offset:
                self.last_offset = last
            self.messages += outcome.processed


@dataclass
class LaneReading:
    """One slice's reading of one lane (see the module docstring)."""

    lane: Lane
    lease: Lease
    keeper: LeaseKeeper
    consumer: LaneConsumer
    claim: LaneClaim
    progress: Progress
    store: LaneStore
    member: str
    shutdown: threading.Event
    deadline: float
    batch_size: int
    poll_timeout_s: float
    limiter: RateLimiter
    rate_limit: RateLimit | None = None
    on_closing: Callable[[], None] | None = None
    clock: Callable[[], float] = time.monotonic
    end: int = field(init=False)
    _next_policy_check: float = field(init=False)
    _last_message_at: float = field(init=False)
    _received: bool = False
    _closed: bool = False

    def __post_init__(self) -> None:
        self.end = self.claim.end_offset
        self._next_policy_check = self.clock() + POLICY_CHECK_S
        self._last_message_at = self.clock()

    def run(self) -> EndReason:
        """Read and process until the slice must end; return why it ended."""
        self.consumer.assign(self.lane, self.progress.next_offset)
        try:
            return self._loop()
        except LogGone as exc:
            self.store.log_lost(self.lane, str(exc))
            return EndReason.LOG_LOST
        finally:
            self.consumer.unassign()

    def _loop(self) -> EndReason:
        while True:
            self._close_if_due()
            reason = self._stop_reason()
            if reason is not None:
                return reason
            batch = self._next_batch()
            allowed = self._rate_allowed(batch)
            if allowed:
                reason = self._process(batch[:allowed])
                if reason is not None:
                    return reason
            if allowed < len(batch):
                return EndReason.RATE_LIMITED

    def _rate_allowed(self, batch: list[Record]) -> int:
        """Take tokens for the batch from the topic's bucket; return how many
        of its messages may run. With fewer than all, the slice ends early and
        the lane's next turn waits until tokens are back (Progress.wait_s),
        instead of holding the lease while it waits."""
        if self.rate_limit is None or not batch:
            return len(batch)
        grant = self.limiter.take(self.lane.topic, self.rate_limit, wanted=len(batch))
        self.progress.wait_s = grant.wait_s
        return grant.granted

    def _stop_reason(self) -> EndReason | None:
        """Tell why the slice must end before reading on, if it must."""
        reason = self._interruption()
        if reason == EndReason.DEADLINE and self._starved():
            # Starved the whole slice (shorter than STALL_S) although the log
            # should hold messages: check it before giving the turn away.
            self._check_log()
        if reason is not None:
            return reason
        if self._paused():
            return EndReason.PAUSED
        if self.progress.next_offset >= self.end:
            self.end = self.store.end_offset(self.lane)
            if self.progress.next_offset >= self.end:
                return EndReason.DRAINED
        return None

    def _starved(self) -> bool:
        return not self._received and self.progress.next_offset < self.end

    def _paused(self) -> bool:
        """Re-read the topic's policy now and then, to notice a pause."""
        if self.clock() < self._next_policy_check:
            return False
        self._next_policy_check = self.clock() + POLICY_CHECK_S
        current = self.store.policy(self.lane)
        return current is None or current.paused

    def _next_batch(self) -> list[Record]:
        """Poll the next messages the database records as published."""
        size = self.batch_size if self.progress.messages else FIRST_BATCH
        polled = self.consumer.poll_batch(size, self.poll_timeout_s)
        batch = self._published(
            [m for m in polled if m.offset >= self.progress.next_offset]
        )
        if batch:
            self._last_message_at, self._received = self.clock(), True
        elif self.clock() - self._last_message_at >= STALL_S:
            self._check_log()
            self._last_message_at = self.clock()
        return batch

    def _published(self, messages: list[Record]) -> list[Record]:
        """Keep the messages below the recorded end (re-read as it grows).

        The publisher produces a batch before it commits the batch's offsets, so
        a message at or past the recorded end may have no offset on its task yet
        and would be skipped as a stale copy, its task never run. Such messages
        are read again later: the consumer is moved back to the first of them.
        """
        if not messages or messages[-1].offset < self.end:
            return messages
        self.end = self.store.end_offset(self.lane)
        ready = [m for m in messages if m.offset < self.end]
        if len(ready) < len(messages):
            self.consumer.assign(self.lane, messages[len(ready)].offset)
        return ready

    def _process(self, batch: list[Record]) -> EndReason | None:
        """Run a batch through the store; return why the slice ends, if it does."""
        outcome = self.store.process(
            self.lane,
            self.lease.token,
            self.member,
            batch,
            self.deadline,
            self._interrupted,
            careful_until=self.progress.careful_until,
        )
        self.progress.add(batch, outcome)
        if self.rate_limit is not None:
            # Skipped messages and those the slice had no time for ran nothing.
            unused = len(batch) - outcome.processed
            self.limiter.give_back(self.lane.topic, self.rate_limit, unused)
        if self.keeper.lost.is_set():
            return EndReason.LEASE_LOST
        if outcome.next_offset != self.progress.next_offset:
            self.consumer.commit(self.lane, outcome.next_offset)
            self.progress.next_offset = outcome.next_offset
        if outcome.stop_reason is None:
            if outcome.next_offset <= batch[-1].offset:
                # Some of the batch waits (a key's retry back-off) while the
                # rest finished: read on from the first unfinished message; the
                # store skips what finished.
                self.consumer.assign(self.lane, outcome.next_offset)
            return None
        self.progress.wait_s = outcome.wait_s
        return self._interruption() or EndReason(outcome.stop_reason)

    def _check_log(self) -> None:
        """Raise LogGone if Kafka lost the messages this lane waits for (a slow
        broker raises KafkaUnavailable instead); else read on where it was."""
        lost = log_loss(
            self.consumer,
            self.lane,
            end=self.end,
            recorded_topic_id=self.claim.kafka_topic_id,
        )
        if lost is not None:
            raise LogGone(lost)
        self.consumer.assign(self.lane, self.progress.next_offset)

    def _interrupted(self) -> bool:
        """Checked by the store before each task: tell whether the slice must
        stop now; and call `on_closing` when it is due, on time whatever the
        batch (a batch is not cut for it: its tasks would be loaded twice)."""
        self._close_if_due()
        return self.keeper.lost.is_set() or self.shutdown.is_set()

    def _close_if_due(self) -> None:
        """Call `on_closing` once, when the deadline is CLOSING_LEAD_S away."""
        if self.on_closing is None or self._closed:
            return
        if self.clock() >= self.deadline - CLOSING_LEAD_S:
            self._closed = True
            self.on_closing()

    def _interruption(self) -> EndReason | None:
        if self.keeper.lost.is_set():
            return EndReason.LEASE_LOST
        if self.shutdown.is_set():
            return EndReason.SHUTDOWN
        if self.clock() >= self.deadline:
            return EndReason.DEADLINE
        return None
