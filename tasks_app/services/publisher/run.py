"""A publisher run: one active publisher at a time, batches until nothing is due."""

import logging
import threading
import time
from collections.abc import Callable, Sequence

import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db.models import QuerySet
from django.db.models.functions import Now

from rotation.kafka.producer import BatchProducer, Delivery, ProduceError
from tasks_app.models import DeadLetter, OutboxEntry
from tasks_app.services.publish_nudge import publish_nudge_clear
from tasks_app.services.publisher.batch import publish_batch
from tasks_app.services.publisher.dead_letters import dead_letters_publish
from tasks_app.services.publisher.pipeline import publish_overlapped
from tasks_app.services.publisher.topics_ready import (
    TopicsNotReady,
    topics_forget,
    topics_prepare,
)
from tasks_app.services.publisher_lock import publisher_lock

logger = logging.getLogger(__name__)

# A run that finds the lock taken keeps trying this long: the holder may be just
# finishing and would then miss the task whose nudge queued this run.
LOCK_WAIT_S = 0.1
# During a long run, start idle lanes of newly published topics this often.
KICK_INTERVAL_S = 0.1


KickLanes = Callable[[Sequence[str]], object]
"""Start the idle lanes of these topics (the Celery layer's side effect)."""


def publish_pending_run(*, producer: BatchProducer, kick_lanes: KickLanes) -> int:
    """Publish due tasks until none is left or the time budget is spent, then
    send the dead letters lanes recorded; start idle lanes of the topics that
    got tasks along the way.

    Return how many tasks were published. Only one run is active at a time (a
    PostgreSQL advisory lock); a concurrent run returns 0 at once.
    """
    _nudge_clear()
    try:
        with publisher_lock(wait_s=LOCK_WAIT_S) as held:
            return _publish_until_done(producer, kick_lanes) if held else 0
    except (OperationalError, InterfaceError) as exc:
        logger.error(
            "The publisher could not use PostgreSQL (%s); due tasks stay pending "
            "and the next run (within SCHEDULER_PUBLISH_INTERVAL) tries again.",
            exc,
        )
        return 0


def _nudge_clear() -> None:
    """Let the next commit queue a new run; beat covers for a Redis outage."""
    try:
        publish_nudge_clear()
    except redis.RedisError as exc:
        logger.warning("Could not clear the publisher nudge in Redis: %s", exc)


class _RunTally:
    """What a run has published, and the topics whose idle lanes still need a start.

    Lanes are kicked after the first batch and then at most every KICK_INTERVAL_S
    (and at the end of the run): asking the scheduler after every batch cost
    about a fifth of a batch's time, and a running lane needs no kick.
    """

    def __init__(self, kick_lanes: KickLanes) -> None:
        self.kick_lanes = kick_lanes
        self.published = 0
        self._unkicked: set[str] = set()
        self._kicked_at = -KICK_INTERVAL_S
        self._lock = threading.Lock()

    def add(self, deliveries: list[Delivery]) -> None:
        with self._lock:
            self.published += len(deliveries)
            self._unkicked.update(d.topic for d in deliveries)
            due = time.monotonic() - self._kicked_at >= KICK_INTERVAL_S
        if due:
            self.kick()

    def kick(self) -> None:
        with self._lock:
            topics, self._unkicked = sorted(self._unkicked), set()
            self._kicked_at = time.monotonic()
        if topics:
            self.kick_lanes(topics)


def _publish_until_done(producer: BatchProducer, kick_lanes: KickLanes) -> int:
    """Publish batches until nothing is due, a batch fails or the budget is spent;
    then send the dead letters lanes recorded."""
    has_letters = DeadLetter.objects.exists()
    if not has_letters and not _due().exists():
        return 0
    progress = _RunTally(kick_lanes)
    try:
        producer.probe()
        _publish_batches(producer, progress)
        if has_letters:
            _publish_dead_letters(producer)
    except ProduceError as exc:
        topics_forget()
        logger.error(
            "%s; %d tasks stay pending and %d dead letters stored; both are sent "
            "when it answers.",
            exc,
            _due().count(),
            DeadLetter.objects.count(),
        )
    progress.kick()
    return progress.published


def _publish_dead_letters(producer: BatchProducer) -> None:
    """Send the waiting dead letters, creating their topics first if needed."""
    try:
        dead_letters_publish(producer=producer)
    except TopicsNotReady as exc:
        if not topics_prepare(names=exc.names):
            dead_letters_publish(producer=producer)


def _publish_batches(producer: BatchProducer, progress: _RunTally) -> None:
    """Publish lone batches while they come out short; overlap them for a backlog."""
    deadline = time.monotonic() + settings.SCHEDULER_PUBLISH_BUDGET_S
    blocked: set[str] = set()
    while time.monotonic() < deadline:
        try:
            deliveries = publish_batch(producer=producer, blocked=blocked)
            if not deliveries:
                return
            progress.add(deliveries)
            if len(deliveries) == settings.SCHEDULER_PUBLISH_BATCH:
                publish_overlapped(
                    producer=producer,
                    blocked=blocked,
                    deadline=deadline,
                    on_published=progress.add,
                )
                return
        except TopicsNotReady as exc:
            blocked |= topics_prepare(names=exc.names)


def _due() -> QuerySet[OutboxEntry]:
    """Select the outbox entries whose time has come (by the database's clock)."""
    return OutboxEntry.objects.filter(available_at__lte=Now())
