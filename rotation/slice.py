"""A slice: one member's turn on one lane, under a fenced lease.

Claim a ready chain, take the lane's lease, claim the lane's fenced epoch (and
heal it first if Kafka lost its log), read it (rotation/lane_reader.py), then
release, record the slice and queue the lane's next turn, whatever went wrong.
A hand-off is on the critical path, so the lane's next turn is queued shortly
before the slice ends, and its member waits for the release (which says where
reading stopped, so it starts fetching there before its fenced claim); the
fenced claim answers the topic's current policy (kept for the member's next
turn on the lane).
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import redis

from rotation.errors import RotationError
from rotation.kafka.consumer import ConsumerCache
from rotation.lane_reader import LaneReading, Progress
from rotation.lanes import Lane, LanePolicy
from rotation.lease import Lease, LeaseError, LeaseKeeper, LeaseManager
from rotation.members import Members
from rotation.rate_limit import RateLimiter
from rotation.scheduler import EarlyTurn, Scheduler
from rotation.store import (
    EndReason,
    Fenced,
    LaneClaim,
    LaneStore,
    SliceRecord,
    StoreUnavailable,
    TokenCounterReset,
)
from rotation.turns import Turn, Turns

logger = logging.getLogger(__name__)
# Logged when a lane is found paused, or its group no longer reads its topic,
# before the lease (a member without its policy) or at the fenced claim.
_CHAIN_STOPS = "Lane %s is paused or gone; its chain stops"
# A slice that ends so leaves its lane nothing to do for SliceRecord.wait_s:
# the lane's next turn waits that long (a member is not held asleep meanwhile).
_WAITING = frozenset((EndReason.RATE_LIMITED, EndReason.RETRY_WAIT))


@dataclass(frozen=True)
class RotationConfig:
    """Tuning for the slice loop, read from settings by the caller."""

    grace_ms: int
    batch_size: int
    poll_timeout_ms: int
    error_backoff_s: float = 1.0


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
        limiter: RateLimiter,
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
        self.limiter = limiter
        self.shutdown = shutdown
        self.clock = clock
        self.wall_clock = wall_clock
        # Each lane's policy as its last fenced claim here answered it.
        self._policies: dict[Lane, LanePolicy] = {}

    def run(self, wake: Turn) -> SliceRecord | None:
        """Claim the most deserving ready chain and run its turn; return the record.

        The claim takes the member out of the idle pool; it goes back afterwards
        in every case, also when nothing was claimed: the wake-up sent to it
        reserved it.
        """
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
        self.consumers.next_turn(turn.lane.group)
        try:
            return self._take_turn(turn)
        finally:
            self.consumers.get(turn.lane.group).unassign_unread()

    def _read_ahead(self, turn: Turn) -> None:
        """Start fetching where the lane's last slice stopped, while the policy,
        the lease and the fenced claim are taken: the first fetch is the longest
        step of a hand-off. The claim's resume point decides where reading
        starts; the reader assigns again if it differs (rotation/lane_reader.py).
        """
        if turn.resume_from < 0:
            return
        try:
            self.consumers.get(turn.lane.group).assign(turn.lane, turn.resume_from)
        except RotationError as exc:
            logger.warning("Lane %s: no read-ahead (%s)", turn.lane, exc)

    def _take_turn(self, turn: Turn) -> SliceRecord | None:
        lane = turn.lane
        self._read_ahead(turn)
        policy = self._policies.get(lane) or self._read_policy(turn)
        if policy is None:
            return None
        lease = self._lease(turn, ttl_ms=policy.slice_ms + self.config.grace_ms)
        if lease is None:
            return None  # another member holds it and will queue the next turn
        self._best_effort(
            "show its lane", self.members.set_lane, self.member, f"{lane}"
        )
        record, early = self._slice_under_lease(turn, lease)
        self._hand_on(record, self._policies.get(lane, policy), early)
        self._best_effort("clear its lane", self.members.set_lane, self.member, "")
        return record

    def _lease(self, turn: Turn, *, ttl_ms: int) -> Lease | None:
        """Take the lane's lease. A turn queued before the last slice ended
        waits for its holder's release, for up to one lease TTL (a holder that
        died never releases, and its lease expires within that) or until this
        worker shuts down, and starts fetching where the release says the
        reading stopped."""
        if not turn.after_release:
            return self.leases.acquire(turn.lane, owner=self.member, ttl_ms=ttl_ms)
        lease, resume_from = self.leases.acquire_on_release(
            turn.lane,
            owner=self.member,
            ttl_ms=ttl_ms,
            wait_s=ttl_ms / 1000,
            stop=self.shutdown,
        )
        if lease is not None:
            self._read_ahead(replace(turn, resume_from=resume_from))
        elif self.shutdown.is_set():
            self._pass_on(turn)
        return lease

    def _pass_on(self, turn: Turn) -> None:
        """Queue a turn this member gives up (its worker shuts down) for another.

        The holder may have found the turn still queued and left it to this
        member: dropped, the lane would wait for the watchdog. If the holder has
        not looked yet, it finds a turn queued that is not its own and queues
        one more; the spare wake-up claims nothing.
        """
        self._best_effort(
            "pass its turn on",
            lambda: self.turns.enqueue(
                turn.chain,
                turn.lane,
                exclude=[self.member],
                last_member=turn.last_member,
                after_release=True,
            ),
        )

    def _read_policy(self, turn: Turn) -> LanePolicy | None:
        """Read the lane's policy before its lease (this member has not claimed
        the lane before); None when the chain stops or tries again later."""
        try:
            policy = self.store.policy(turn.lane)
        except StoreUnavailable as exc:
            self._retry_later(turn, exc)
            return None
        if policy is None or policy.paused:
            logger.info(_CHAIN_STOPS, turn.lane)
            return None
        return policy

    def _retry_later(self, turn: Turn, exc: Exception) -> None:
        """Queue the chain's turn again after the error back-off."""
        delay_s = self.config.error_backoff_s
        logger.error("Lane %s: %s; trying again in %.1f s", turn.lane, exc, delay_s)
        self.turns.enqueue(
            turn.chain, turn.lane, last_member=self.member, delay_s=delay_s
        )

    def _hand_on(
        self, record: SliceRecord, policy: LanePolicy, early: EarlyTurn | None
    ) -> None:
        """Queue the lane's next turn (unless it was queued early), then record
        the slice.

        The record is written after the turn is queued, outside the hand-off.
        Either step may fail when a service is down; no failure may skip the
        other, and an unqueued turn is queued again by the watchdog.
        """
        error = record.end_reason == EndReason.ERROR
        delay_s = self.config.error_backoff_s if error else 0
        try:
            self.scheduler.after_slice(
                record, policy=policy, delay_s=delay_s, early=early
            )
        except (redis.RedisError, RotationError) as exc:
            logger.error(
                "Lane %s: its next turn was not queued (%s); the watchdog will",
                record.lane,
                exc,
            )
        try:
            self.store.record_slice(record)
        except StoreUnavailable as exc:
            logger.error("Slice on lane %s was not recorded: %s", record.lane, exc)

    def _best_effort(
        self, what: str, action: Callable[..., object], *args: object
    ) -> None:
        """Run member and turn bookkeeping in Redis; a failure only delays the
        rotation (the watchdog repairs it), so it is logged, not raised."""
        try:
            action(*args)
        except redis.RedisError as exc:
            logger.warning("%s could not %s in Redis: %s", self.member, what, exc)

    def _slice_under_lease(
        self, turn: Turn, lease: Lease
    ) -> tuple[SliceRecord, EarlyTurn | None]:
        """Run the slice; return its record and its lane's next turn if that
        was queued before the slice ended."""
        lane = turn.lane
        started = self.wall_clock()
        progress = Progress(next_offset=-1)
        early: EarlyTurn | None = None

        def queue_next(policy: LanePolicy) -> None:
            nonlocal early
            early = self._queue_next_early(lane, policy, started)

        with LeaseKeeper(self.leases, lease) as keeper:
            try:
                claim = self._claim(lane, lease)
                if claim.log_lost:
                    claim = self.store.heal(lane, lease.token)
                progress.next_offset, progress.careful_until = claim[:2]
                reason = self._read(lane, lease, keeper, claim, progress, queue_next)
            except Fenced as exc:
                logger.warning("%s; stopping without writing", exc)
                reason = EndReason.LEASE_LOST
            except TokenCounterReset as exc:
                # The lease is ours: hand it back and queue the next turn now,
                # rather than keep it until it expires with the lane idle.
                logger.warning("%s", exc)
                reason = EndReason.TOKEN_RESET
            except (RotationError, redis.RedisError) as exc:
                logger.error("Slice on lane %s failed: %s", lane, exc)
                reason = EndReason.ERROR
            except Exception:
                # A bug or an unexpected library error: the lane must move on.
                logger.exception("Slice on lane %s failed unexpectedly", lane)
                reason = EndReason.ERROR
        if reason != EndReason.LEASE_LOST and self._lease_gone(lease, keeper):
            # The lease went before the slice ended, whatever the slice noticed
            # first (a freeze ends in a failed service call, or at the
            # deadline): the lane is another member's now, and so is its turn.
            reason = EndReason.LEASE_LOST
        if reason != EndReason.LEASE_LOST:
            # The chain stays busy until the next turn is queued.
            self._best_effort("keep its turn", self.turns.refresh, turn)
            self._settle(lane, lease)
            self._release(lease, progress.next_offset)
        record = SliceRecord(
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
            wait_s=progress.wait_s if reason in _WAITING else 0.0,
        )
        return record, early

    def _queue_next_early(
        self, lane: Lane, policy: LanePolicy, started: float
    ) -> EarlyTurn | None:
        """Queue the lane's next turn now, shortly before the slice ends; on a
        Redis failure it is queued at the end as usual."""
        try:
            return self.scheduler.before_slice_end(
                lane,
                member=self.member,
                policy=policy,
                started_at=started,
                now=self.wall_clock(),
            )
        except (redis.RedisError, RotationError) as exc:
            logger.warning("Lane %s: next turn not queued early (%s)", lane, exc)
            return None

    def _lease_gone(self, lease: Lease, keeper: LeaseKeeper) -> bool:
        """Tell whether the lease is no longer this holder's (Redis down: no)."""
        if keeper.lost.is_set():
            return True
        try:
            return self.leases.holder(lease.lane) != lease.value
        except redis.RedisError:
            return False

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
            raise TokenCounterReset(exc) from exc

    def _read(
        self,
        lane: Lane,
        lease: Lease,
        keeper: LeaseKeeper,
        claim: LaneClaim,
        progress: Progress,
        queue_next: Callable[[LanePolicy], None],
    ) -> EndReason:
        """Read the lane until the slice must end (rotation/lane_reader.py),
        unless the claim found it paused or gone. The policy the claim answered
        is kept for this member's next turn on the lane, which then reads none
        itself; the lease was taken with an older one maybe, so a new slice
        length applies from the next slice."""
        policy = claim.policy
        if policy is None or policy.paused:
            self._policies.pop(lane, None)
            logger.info(_CHAIN_STOPS, lane)
            return EndReason.PAUSED
        self._policies[lane] = policy
        reading = LaneReading(
            lane=lane,
            lease=lease,
            keeper=keeper,
            consumer=self.consumers.get(lane.group),
            claim=claim,
            progress=progress,
            store=self.store,
            member=self.member,
            shutdown=self.shutdown,
            deadline=self.clock() + (lease.ttl_ms - self.config.grace_ms) / 1000,
            batch_size=self.config.batch_size,
            poll_timeout_s=self.config.poll_timeout_ms / 1000,
            limiter=self.limiter,
            rate_limit=policy.rate_limit,
            on_closing=lambda: queue_next(policy),
            clock=self.clock,
        )
        return reading.run()

    def _settle(self, lane: Lane, lease: Lease) -> None:
        """Note that this holder lived to its slice's end, before the lease goes:
        the next holder's claim then does not take it for dead (and run its
        first batch carefully), and can come the moment the lease is released."""
        try:
            self.store.settle(lane, lease.token)
        except StoreUnavailable as exc:
            logger.error("Lane %s was not settled: %s", lane, exc)

    def _release(self, lease: Lease, resume_from: int) -> None:
        try:
            self.leases.release(lease, resume_from=resume_from)
        except LeaseError as exc:
            logger.warning("%s; the lease will expire by itself", exc)
