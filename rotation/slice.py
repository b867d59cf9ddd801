"""The slice loop: one member's turn on one lane, under a fenced lease."""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from rotation.consumer import ConsumerCache, LaneConsumer, LogGone, Record
from rotation.errors import RotationError
from rotation.lanes import Lane, LanePolicy
from rotation.lease import Lease, LeaseError, LeaseKeeper, LeaseManager
from rotation.log_check import STALL_S, log_loss
from rotation.members import Members
from rotation.scheduler import EndReason, Scheduler
from rotation.store import (
    Fenced,
    LaneClaim,
    LaneStore,
    SliceRecord,
    StoreUnavailable,
)
from rotation.turns import Turn, Turns

logger = logging.getLogger(__name__)

# How often a running slice re-reads its topic's policy (to notice a pause).
POLICY_CHECK_S = 0.25
# A slice's first batch is small so its first handler starts sooner: a batch's
# tasks are loaded before any runs, at ~50 us each (200: 11 ms; 20: 1.6 ms).
FIRST_BATCH = 20


@dataclass(frozen=True)
class RotationConfig:
    """Tuning for the slice loop, read from settings by the caller."""

    grace_ms: int
    batch_size: int
    poll_timeout_ms: int
    error_backoff_s: float = 1.0


@dataclass
class _Progress:
    """What a slice has done so far."""

    next_offset: int
    careful_until: int = 0
    messages: int = 0
    first_offset: int | None = None
    last_offset: int | None = None


class SliceRunner:
    """Run turns for one member: acquire, consume in order, record, hand on."""

    def __init__(
        self,
        *,
        member: str,
        config: RotationConfig,
        store: LaneStore,
        leases: LeaseManager,
        consumers: ConsumerCache,
        members: Members,
        turns: Turns,
        scheduler: Scheduler,
        shutdown: threading.Event,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.member = member
        self.config = config
        self.store = store
        self.leases = leases
        self.consumers = consumers
        self.members = members
        self.turns = turns
        self.scheduler = scheduler
        self.shutdown = shutdown
        self.clock = clock
        self.wall_clock = wall_clock

    def run(self, wake: Turn) -> SliceRecord | None:
        """Claim the most deserving ready chain and run its turn; return the record.

        The member goes back to the idle pool afterwards in every case, also
        when nothing was claimed: the wake-up sent to it reserved it.
        """
        self._best_effort("mark itself busy", self.members.mark_busy, self.member)
        try:
            turn = self.turns.claim(wake, self.member)
            if turn is None:
                return None
            try:
                return self._run(turn)
            finally:
                self._best_effort("finish its turn", self.turns.finish, turn)
        finally:
            if not self.shutdown.is_set():
                self._best_effort(
                    "mark itself idle",
                    self.members.mark_idle,
                    self.member,
                )

    def _run(self, turn: Turn) -> SliceRecord | None:
        lane = turn.lane
        try:
            policy = self.store.policy(lane)
        except StoreUnavailable as exc:
            self._retry_later(turn, exc)
            return None
        if policy is None or policy.paused:
            logger.info("Lane %s is paused or gone; its chain stops", lane)
            return None
        lease = self.leases.acquire(
            lane, owner=self.member, ttl_ms=policy.slice_ms + self.config.grace_ms
        )
        if lease is None:
            return None  # another member holds it and will queue the next turn
        self._best_effort(
            "show its lane", self.members.set_lane, self.member, f"{lane}"
        )
        record = self._slice_under_lease(turn, lease, policy)
        self._best_effort("clear its lane", self.members.set_lane, self.member, "")
        self._hand_on(record, policy)
        return record

    def _retry_later(self, turn: Turn, exc: Exception) -> None:
        """Queue the chain's turn again after the error back-off."""
        delay_s = self.config.error_backoff_s
        logger.error("Lane %s: %s; trying again in %.1f s", turn.lane, exc, delay_s)
        self.turns.enqueue(
            turn.chain, turn.lane, last_member=self.member, delay_s=delay_s
        )

    def _hand_on(self, record: SliceRecord, policy: LanePolicy) -> None:
        """Record the slice and queue the lane's next turn.

        Either may fail when a service is down; neither failure may skip the
        other, and an unqueued turn is queued again by the watchdog.
        """
        try:
            self.store.record_slice(record)
        except StoreUnavailable as exc:
            logger.error("Slice on lane %s was not recorded: %s", record.lane, exc)
        error = record.end_reason == EndReason.ERROR
        delay_s = self.config.error_backoff_s if error else 0
        try:
            self.scheduler.after_slice(record, policy=policy, delay_s=delay_s)
        except (redis.RedisError, RotationError) as exc:
            logger.error(
                "Lane %s: its next turn was not queued (%s); the watchdog will",
                record.lane,
                exc,
            )

    def _best_effort(self, what: str, action: Callable[..., object], *args) -> None:
        """Run member and turn bookkeeping in Redis; a failure only delays the
        rotation (the watchdog repairs it), so it is logged, not raised."""
        try:
            action(*args)
        except redis.RedisError as exc:
            logger.warning("%s could not %s in Redis: %s", self.member, what, exc)

    def _slice_under_lease(
        self, turn: Turn, lease: Lease, policy: LanePolicy
    ) -> SliceRecord:
        lane = turn.lane
        started = self.wall_clock()
        progress = _Progress(next_offset=-1)
        with LeaseKeeper(self.leases, lease) as keeper:
            try:
                claim = self._claim(lane, lease)
                if claim.log_lost:
                    claim = self.store.heal(lane, lease.token)
                progress.next_offset, progress.careful_until = claim[:2]
                reason = self._consume(lane, lease, keeper, claim, progress)
            except Fenced as exc:
                logger.warning("%s; stopping without writing", exc)
                reason = EndReason.LEASE_LOST
            except (RotationError, redis.RedisError) as exc:
                logger.error("Slice on lane %s failed: %s", lane, exc)
                reason = EndReason.ERROR
            except Exception:
                # A bug or an unexpected library error: the lane must move on.
                logger.exception("Slice on lane %s failed unexpectedly", lane)
                reason = EndReason.ERROR
        if reason != EndReason.LEASE_LOST:
            # The chain stays busy until the next turn is queued.
            self._best_effort("keep its turn", self.turns.refresh, turn)
            self._release(lease)
        return SliceRecord(
            lane=lane,
            member=self.member,
            token=lease.token,
            started_at=started,
            ended_at=self.wall_clock(),
            messages=progress.messages,
            first_offset=progress.first_offset,
            last_offset=progress.last_offset,
            next_offset=progress.next_offset,
            end_reason=reason,
        )

    def _claim(self, lane: Lane, lease: Lease) -> LaneClaim:
        """Raise the lane's fenced epoch to our token; repair a reset Redis counter."""
        try:
            return self.store.claim(lane, lease.token)
        except Fenced as exc:
            if self.leases.holder(lane) != lease.value:
                raise
            # We hold the Redis lease, yet the database saw a newer token: Redis
            # lost its counter. Move the counter past the epoch; next turn works.
            self.leases.raise_token_floor(lane, exc.epoch)
            raise

    def _consume(
        self,
        lane: Lane,
        lease: Lease,
        keeper: LeaseKeeper,
        claim: LaneClaim,
        progress: _Progress,
    ) -> EndReason:
        consumer = self.consumers.get(lane.group)
        consumer.assign(lane, progress.next_offset)
        try:
            return self._loop(lane, lease, keeper, consumer, claim, progress)
        except LogGone as exc:
            self.store.log_lost(lane, str(exc))
            return EndReason.LOG_LOST
        finally:
            consumer.unassign()

    def _loop(
        self,
        lane: Lane,
        lease: Lease,
        keeper: LeaseKeeper,
        consumer: LaneConsumer,
        claim: LaneClaim,
        progress: _Progress,
    ) -> EndReason:
        deadline = self.clock() + lease.ttl_ms / 1000 - self.config.grace_ms / 1000
        end = claim.end_offset
        next_check = self.clock() + POLICY_CHECK_S
        last_message_at, received = self.clock(), False
        while True:
            reason = self._interruption(keeper, deadline)
            starved = not received and progress.next_offset < end
            if reason == EndReason.DEADLINE and starved:
                # Starved the whole slice (shorter than STALL_S) while the log
                # should hold messages: check it before giving the turn away.
                self._check_log(lane, consumer, claim, progress.next_offset, end)
            if reason is not None:
                return reason
            if self.clock() >= next_check:
                next_check = self.clock() + POLICY_CHECK_S
                current = self.store.policy(lane)
                if current is None or current.paused:
                    return EndReason.PAUSED
            if progress.next_offset >= end:
                end = self.store.end_offset(lane)
                if progress.next_offset >= end:
                    return EndReason.DRAINED
            size = self.config.batch_size if progress.messages else FIRST_BATCH
            messages = consumer.poll_batch(size, self.config.poll_timeout_ms / 1000)
            messages = [m for m in messages if m.offset >= progress.next_offset]
            messages, end = self._published(lane, consumer, messages, end)
            if not messages:
                if self.clock() - last_message_at >= STALL_S:
                    self._check_log(lane, consumer, claim, progress.next_offset, end)
                    last_message_at = self.clock()
                continue
            last_message_at, received = self.clock(), True
            outcome = self.store.process(
                lane,
                lease.token,
                self.member,
                messages,
                deadline,
                lambda: keeper.lost.is_set() or self.shutdown.is_set(),
                careful_until=progress.careful_until,
            )
            if outcome.processed:
                if progress.first_offset is None:
                    progress.first_offset = messages[0].offset
                progress.last_offset = outcome.next_offset - 1
                progress.messages += outcome.processed
            if keeper.lost.is_set():
                return EndReason.LEASE_LOST
            if outcome.next_offset != progress.next_offset:
                consumer.commit(lane, outcome.next_offset)
                progress.next_offset = outcome.next_offset
            if outcome.stop_reason is not None:
                return self._interruption(keeper, deadline) or EndReason(
                    outcome.stop_reason
                )

    def _check_log(
        self,
        lane: Lane,
        consumer: LaneConsumer,
        claim: LaneClaim,
        next_offset: int,
        end: int,
    ) -> None:
        """Raise LogGone if Kafka lost the messages this lane waits for (a slow
        broker raises KafkaUnavailable instead); else read on from `next_offset`."""
        lost = log_loss(consumer, lane, end=end, recorded_topic_id=claim.kafka_topic_id)
        if lost is not None:
            raise LogGone(lost)
        consumer.assign(lane, next_offset)

    def _published(
        self, lane: Lane, consumer: LaneConsumer, messages: list[Record], end: int
    ) -> tuple[list[Record], int]:
        """Keep the messages the database records as published; return the new end.

        The publisher produces a batch before it commits the batch's offsets, so
        a message at or past the recorded end may have no offset on its task yet
        and would be skipped as a stale copy, its task never run. Such messages
        are read again later: the consumer is moved back to the first of them.
        """
        if not messages or messages[-1].offset < end:
            return messages, end
        end = self.store.end_offset(lane)
        ready = [m for m in messages if m.offset < end]
        if len(ready) < len(messages):
            consumer.assign(lane, messages[len(ready)].offset)
        return ready, end

    def _interruption(self, keeper: LeaseKeeper, deadline: float) -> EndReason | None:
        if keeper.lost.is_set():
            return EndReason.LEASE_LOST
        if self.shutdown.is_set():
            return EndReason.SHUTDOWN
        if self.clock() >= deadline:
            return EndReason.DEADLINE
        return None

    def _release(self, lease: Lease) -> None:
        try:
            self.leases.release(lease)
        except LeaseError as exc:
            logger.warning("%s; the lease will expire by itself", exc)
