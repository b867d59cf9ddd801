"""Lanes (group, topic, partition): the unit of ordering and of the lease."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rotation.rate_limit names its keys with this module's prefix
    from rotation.rate_limit import RateLimit

KEY_PREFIX = "rot"


def text(value: bytes | str) -> str:
    """Return a Redis reply as text, whichever way the client decodes replies."""
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, order=True)
class Lane:
    """One consumer group's view of one partition of one topic."""

    group: str
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.group}/{self.topic}/{self.partition}"

    def key(self, kind: str) -> str:
        """Name this lane's Redis key of the given kind (lease, token, ...)."""
        return f"{KEY_PREFIX}:{kind}:{self.group}:{self.topic}:{self.partition}"

    def as_args(self) -> list[str | int]:
        """Serialise for a Celery message (primitives only)."""
        return [self.group, self.topic, self.partition]


@dataclass(frozen=True)
class LanePolicy:
    """What the slice loop needs to know about a lane's topic (the fenced claim
    answers it at each slice's start)."""

    slice_ms: int
    weight: int
    paused: bool
    sequential: bool
    rate_limit: "RateLimit | None" = None
