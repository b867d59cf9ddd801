"""Wake the publisher right after a submission commits, debounced through Redis."""

import logging

import redis
from django.db import transaction

from tasks_app.redis_client import redis_client
from tasks_app.services.background import PUBLISH_PENDING, task_send

logger = logging.getLogger(__name__)

NUDGE_KEY = "scheduler:publish:queued"
# Safety expiry: if a queued publisher run is lost, a nudge works again after this.
NUDGE_TTL_S = 30


def publish_nudge() -> None:
    """Queue one publisher run unless one is already queued.

    The publisher deletes NUDGE_KEY when it starts, so a submission that commits
    after that start queues exactly one more run: a burst of requests queues at
    most one run, and no committed task waits for the beat interval.
    """
    instead = "the beat schedule publishes within SCHEDULER_PUBLISH_INTERVAL"
    try:
        queued = redis_client().set(NUDGE_KEY, "1", nx=True, ex=NUDGE_TTL_S)
    except redis.RedisError as exc:
        logger.warning(
            "Could not nudge the publisher through Redis (%s); %s", exc, instead
        )
        return
    if queued:
        task_send(PUBLISH_PENDING, instead=instead)


def publish_nudge_clear() -> None:
    """Mark the queued run as started, so the next commit queues a new one."""
    redis_client().delete(NUDGE_KEY)


def publish_nudge_on_commit() -> None:
    """Nudge the publisher once the current transaction commits."""
    transaction.on_commit(publish_nudge)
