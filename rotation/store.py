"""The contract between the slice loop and whoever keeps tasks and lanes (tasks_app).

`rotation/` never touches the database: it calls a LaneStore, which records
outcomes and resume points under the lease's fencing token.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol

from rotation.errors import RotationError
from rotation.kafka.consumer import Record
from rotation.lanes import Lane, LanePolicy


class Fenced(RotationError):
    """A newer holder claimed the lane: this holder must stop writing at once."""

    def __init__(self, lane: Lane, token: int, epoch: int):
        super().__init__(
            f"Lane {lane}: token {token} is stale, the lane's epoch is {epoch}"
        )
        self.lane = lane
        self.token = token
        self.epoch = epoch


class TokenCounterReset(RotationError):
    """Redis lost the lane's token counter (restarted empty): the holder's
    token is below the epoch PostgreSQL recorded, though the lease is its own."""

    def __init__(self, fenced: Fenced):
        super().__init__(
            f"Lane {fenced.lane}: Redis handed out token {fenced.token}, below the "
            f"lane's epoch {fenced.epoch} (Redis lost its data); the counter is "
            "moved past the epoch and the next turn claims the lane"
        )


class StoreUnavailable(RotationError):
    """The store (PostgreSQL) failed; the message names it and what to do."""


class HealPostponed(RotationError):
    """A lane whose messages Kafka lost could not heal now; its next turn retries."""


class LaneClaim(NamedTuple):
    """What a holder learns when it claims a lane."""

    next_offset: int  # the fenced resume point
    careful_until: int  # a holder died before this offset: count each run first
    end_offset: int  # after the last message PostgreSQL records as published
    log_lost: bool  # Kafka lost messages of the lane: heal before anything else
    kafka_topic_id: str  # the topic's id in Kafka when last seen ("" unknown)
    policy: LanePolicy | None = None  # the topic's, now; None: the group left it


@dataclass(frozen=True)
class BatchOutcome:
    """What a batch did: the new resume point and why it stopped early, if it did."""

    next_offset: int
    processed: int
    stop_reason: str | None = None
    wait_s: float = 0.0  # stopped for a retry: how long until it is due


@dataclass(frozen=True)
class LaneView:
    """A lane as the watchdog sees it."""

    lane: Lane
    policy: LanePolicy
    has_backlog: bool


class EndReason(StrEnum):
    """Why a slice ended (the values stored on Slice records)."""

    DEADLINE = "deadline"
    DRAINED = "drained"
    ERROR = "error"
    LEASE_LOST = "lease_lost"
    SHUTDOWN = "shutdown"
    PAUSED = "paused"
    LOG_LOST = "log_lost"  # Kafka lost the lane's messages; the next slice heals
    RATE_LIMITED = "rate_limited"  # the topic's rate limit: the turn waits for tokens
    RETRY_WAIT = "retry_wait"  # the next task's retry is due later: the turn waits
    TOKEN_RESET = "token_reset"  # Redis lost its token counter; the next turn claims


@dataclass(frozen=True)
class SliceRecord:
    """One finished slice, as recorded and listed at /api/slices/."""

    lane: Lane
    member: str
    token: int
    started_at: float
    ended_at: float
    messages: int
    first_offset: int | None
    last_offset: int | None
    next_offset: int
    end_reason: EndReason
    wait_s: float = 0.0  # rate limited or a retry: the lane's next turn waits this long


class LaneStore(Protocol):
    """Database work the rotation needs, injected by tasks_app."""

    def policy(self, lane: Lane) -> LanePolicy | None:
        """Return the lane's policy, or None when its group or topic is gone."""

    def claim(self, lane: Lane, token: int) -> LaneClaim:
        """Raise the lane's epoch to `token`; return its resume offset and the
        offset below which a holder that died may have left a killer task.

        Raise Fenced when the epoch is already `token` or newer.
        """

    def end_offset(self, lane: Lane) -> int:
        """Return the offset after the last message published to the lane."""

    def log_lost(self, lane: Lane, reason: str) -> None:
        """Note that Kafka lost messages of the lane (the next claim heals it)."""

    def heal(self, lane: Lane, token: int) -> LaneClaim:
        """Publish the lane's unfinished tasks again, in order, and move its resume
        point to them, fenced by `token`; return the claim as it stands after."""

    def process(
        self,
        lane: Lane,
        token: int,
        member: str,
        messages: Sequence[Record],
        deadline: float,
        interrupted: Callable[[], bool],
        careful_until: int = 0,
    ) -> BatchOutcome:
        """Run the handlers in order and record outcomes and the resume point,
        fenced by `token`; stop early at `deadline` or when `interrupted()`.

        Below `careful_until` each task is recorded as running (its attempt
        counted) before its handler starts, so a task whose handler kills the
        worker is caught and ends dead after `max_attempts` runs.
        """

    def settle(self, lane: Lane, token: int) -> None:
        """Note that `token`'s holder lived to the end of its slice (fenced), so
        the next claim need not run the first batch carefully."""

    def record_slice(self, record: SliceRecord) -> None:
        """Store the slice's record (for /api/slices/ and the admin)."""

    def overview(self) -> list[LaneView]:
        """Return every lane with its policy and whether it has a backlog."""
