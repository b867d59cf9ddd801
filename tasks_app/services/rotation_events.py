"""Counts of rotation events that no table records: fencing refusals and heals.

Lease losses, slice ends and hand-offs are in the Slice table; a stale token
refused by the database fence, or a lane healed, leaves no row behind. Workers
on any host add these to one Redis hash (HINCRBY is atomic), so whichever web
process Prometheus scrapes reads the same totals. A Redis outage loses a count,
never the work: counting is best effort and only logged when it fails.
"""

import logging
from enum import StrEnum

import redis

from rotation.lanes import text
from tasks_app.redis_client import redis_client

logger = logging.getLogger(__name__)

EVENTS_KEY = "metrics:rotation-events"
_SEPARATOR = "\x1f"  # unit separator: never part of a group or topic name


class RotationEvent(StrEnum):
    """What was counted (the field's first part)."""

    FENCED = "fenced"  # the database refused a stale fencing token
    HEALED = "healed"  # a lost lane's unfinished tasks were published again


def rotation_event_count(*, event: RotationEvent, group: str, topic: str) -> None:
    """Add one `event` on the lane's (group, topic); never raise for Redis."""
    field = _SEPARATOR.join((event.value, group, topic))
    try:
        redis_client().hincrby(EVENTS_KEY, field, 1)
    except redis.RedisError as exc:
        logger.warning(
            "Could not count %s on %s/%s in Redis: %s", event, group, topic, exc
        )


def rotation_event_totals() -> dict[tuple[str, str, str], int]:
    """Read every count as {(event, group, topic): total}; raises on Redis errors."""
    totals = {}
    for field, value in redis_client().hgetall(EVENTS_KEY).items():
        event, group, topic = text(field).split(_SEPARATOR)
        totals[event, group, topic] = int(value)
    return totals
