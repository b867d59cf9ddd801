"""Decide whose turn comes next: at a slice's end, on new work, and by watchdog."""

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from rotation.lanes import KEY_PREFIX, Lane, LanePolicy, text
from rotation.lease import LeaseManager
from rotation.members import Members
from rotation.store import EndReason, LaneStore, LaneView, SliceRecord
from rotation.turns import Turn, Turns

logger = logging.getLogger(__name__)


def chain_of(lane: Lane, sequential: bool) -> str:
    """Name the chain a lane's turns belong to: its own, or its group's."""
    return f"group:{lane.group}" if sequential else f"lane:{lane}"


@dataclass(frozen=True)
class EarlyTurn:
    """A lane's next turn queued before its slice ended, after charging the
    chain for the slice up to `charged_until` (wall clock)."""

    turn: Turn
    charged_until: float


class Scheduler:
    """Queue next turns so every backlogged lane gets its turn, one holder each."""

    def __init__(
        self,
        *,
        client: redis.Redis,
        store: LaneStore,
        turns: Turns,
        leases: LeaseManager,
        members: Members,
        stuck_after_s: float,
    ):
        self.client = client
        self.store = store
        self.turns = turns
        self.leases = leases
        self.members = members
        self.stuck_after_s = stuck_after_s

    def before_slice_end(
        self,
        lane: Lane,
        *,
        member: str,
        policy: LanePolicy,
        started_at: float,
        now: float,
    ) -> EarlyTurn | None:
        """Queue a lane's next turn while its slice is about to end: the member
        it wakes waits for the release, so the wake-up's trip through Celery is
        off the hand-off. The chain is charged for the slice so far first, or
        it would win the next claim on its old virtual time. A group's walk
        picks its next lane from the slice's record: not queued early."""
        if policy.sequential:
            return None
        chain = chain_of(lane, sequential=False)
        self.turns.charge(chain, seconds=now - started_at, weight=policy.weight)
        turn = self.turns.enqueue(
            chain, lane, exclude=[member], last_member=member, after_release=True
        )
        return EarlyTurn(turn, charged_until=now)

    def after_slice(
        self,
        record: SliceRecord,
        *,
        policy: LanePolicy,
        delay_s: float = 0.0,
        early: EarlyTurn | None = None,
    ) -> Turn | None:
        """Charge the slice to its chain and queue the next turn, or let an idle
        chain end (new work or the watchdog starts it again).

        A turn queued early stands while the chain still holds it; its member
        gave up waiting if not, and the turn is queued now. The next turn of a
        lane that is rate limited, or whose next task waits for its retry,
        waits until its tokens are back or the retry is due (record.wait_s), so
        it never spins; another lane's turn does not.
        """
        chain = chain_of(record.lane, policy.sequential)
        charged_until = early.charged_until if early else record.started_at
        self.turns.charge(
            chain, seconds=record.ended_at - charged_until, weight=policy.weight
        )
        if record.end_reason in (EndReason.LEASE_LOST, EndReason.PAUSED):
            return None
        if early is not None and self._still_queued(chain, early.turn):
            return early.turn
        if policy.sequential:
            return self._after_sequential(record, delay_s)
        if not self._lane_has_more(record):
            return None
        return self.turns.enqueue(
            chain,
            record.lane,
            exclude=[record.member],
            last_member=record.member,
            delay_s=max(delay_s, record.wait_s),
            resume_from=record.next_offset,
        )

    def kick(self, topics: Sequence[str] | None = None) -> list[Turn]:
        """Start the idle chains that have a backlog (on `topics`, if given).

        The publisher calls this after publishing, the watchdog on every tick
        (which also recovers chains whose holder died).
        """
        chains: dict[str, list[LaneView]] = defaultdict(list)
        for view in self.store.overview():
            chains[chain_of(view.lane, view.policy.sequential)].append(view)
        started = []
        for chain, views in sorted(chains.items()):
            ready = [v.lane for v in views if v.has_backlog and not v.policy.paused]
            if topics is not None and not any(lane.topic in topics for lane in ready):
                continue
            if ready and not self._chain_busy(chain, [v.lane for v in views]):
                started.append(self.turns.enqueue(chain, ready[0]))
        return started

    def _still_queued(self, chain: str, turn: Turn) -> bool:
        queued = self.turns.queued(chain)
        return queued is not None and queued.id == turn.id

    def _lane_has_more(self, record: SliceRecord) -> bool:
        if record.end_reason != EndReason.DRAINED:
            return True
        return self.store.end_offset(record.lane) > record.next_offset

    def _after_sequential(self, record: SliceRecord, delay_s: float) -> Turn | None:
        """Give each live member one slice on the lane, then move to the next lane."""
        lane = record.lane
        chain = chain_of(lane, True)
        served_key = f"{KEY_PREFIX}:served:{lane.group}"
        self.client.sadd(served_key, record.member)
        served = {text(m) for m in self.client.smembers(served_key)}
        unserved = set(self.members.live()) - served
        if self._lane_has_more(record) and unserved:
            return self.turns.enqueue(
                chain,
                lane,
                exclude=sorted(served),
                last_member=record.member,
                delay_s=max(delay_s, record.wait_s),
                resume_from=record.next_offset,
            )
        self.client.delete(served_key)
        following = self._next_lane(lane)
        if following is None:
            return None
        return self.turns.enqueue(
            chain,
            following,
            exclude=[record.member],
            last_member=record.member,
            delay_s=delay_s,
        )

    def _next_lane(self, lane: Lane) -> Lane | None:
        """Return the group's next backlogged lane after `lane`, wrapping around."""
        ready = sorted(
            v.lane
            for v in self.store.overview()
            if v.lane.group == lane.group and v.has_backlog and not v.policy.paused
        )
        later = [candidate for candidate in ready if candidate > lane]
        candidates = later or ready
        return candidates[0] if candidates else None

    def _chain_busy(self, chain: str, lanes: list[Lane]) -> bool:
        queued = self.turns.queued(chain)
        if queued is not None and not self.turns.is_stuck(
            queued, after_s=self.stuck_after_s
        ):
            return True
        return any(self.leases.holder(lane) for lane in lanes)
