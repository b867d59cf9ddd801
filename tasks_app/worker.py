"""The worker runtime: the composition root of a Celery worker process.

With tasks.py this is the only code that knows the Celery app, the Redis and
Kafka clients and the rotation's objects. The runtime is built once per process
(at worker_process_init, or on first use in any other process that runs tasks)
and hands the services their side effects: the producer, the lane kick.
Celery's worker signals make a rotation worker a member: heartbeats while it
runs, and a shutdown flag that ends the slice in hand and hands its lane on.
The receivers are connected by `signals_connect`, called from the app config.
"""

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence

import redis
from celery import current_app
from celery.signals import (
    before_task_publish,
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)
from celery.utils.nodenames import worker_direct
from django.conf import settings

from rotation.errors import RotationError
from rotation.kafka.consumer import ConsumerCache
from rotation.kafka.producer import BatchProducer
from rotation.lease import LeaseManager
from rotation.members import Heartbeat, Members
from rotation.rate_limit import RateLimiter
from rotation.scheduler import Scheduler
from rotation.slice import RotationConfig, SliceRunner
from rotation.turns import Turn, Turns
from tasks_app.redis_client import redis_client
from tasks_app.services.execution import batch_process
from tasks_app.services.healing import lane_heal
from tasks_app.services.lane_store import DatabaseLaneStore
from tasks_app.services.schedules import SCHEDULE_RUN_TASK

logger = logging.getLogger(__name__)

ROTATION_QUEUE = "rotation"
RUN_SLICE = "tasks_app.tasks.run_slice"
# A queued turn due this many watchdog ticks ago while a member sat idle lost
# its wake-up and is queued again (a spare wake-up claims nothing, so erring
# early costs little).
STUCK_AFTER_TICKS = 2

SHUTDOWN = threading.Event()
# When a schedule run was sent (epoch s): its tick (services/schedules.py).
SENT_AT_HEADER = "schedule_sent_at"


def _send_turn(turn: Turn, delay_s: float) -> None:
    """Queue a turn for its chosen member, or on the shared rotation queue.

    Monitors show the turn as one short line; Celery's default, a safe repr of
    the whole message, was a sixth of the send on the hand-off's path.
    """
    queue = worker_direct(turn.member) if turn.member else ROTATION_QUEUE
    current_app.send_task(
        RUN_SLICE,
        args=[turn.to_message()],
        argsrepr=str(turn),
        queue=queue,
        countdown=delay_s or None,
    )


class Runtime:
    """The clients and rotation objects of this process."""

    def __init__(self) -> None:
        client = redis_client()
        self.producer = BatchProducer(settings.KAFKA_BOOTSTRAP_SERVERS)
        self.members = Members(client, heartbeat_s=settings.SCHEDULER_HEARTBEAT_S)
        self.leases = LeaseManager(client)
        self.store = DatabaseLaneStore(
            process_batch=batch_process,
            heal=functools.partial(lane_heal, producer=self.producer),
        )
        self.turns = Turns(client, self.members, _send_turn)
        self.limiter = RateLimiter(client)
        self.scheduler = Scheduler(
            client=client,
            store=self.store,
            turns=self.turns,
            leases=self.leases,
            members=self.members,
            stuck_after_s=STUCK_AFTER_TICKS * settings.SCHEDULER_WATCHDOG_S,
        )
        self.consumers = ConsumerCache(settings.KAFKA_BOOTSTRAP_SERVERS)
        self.config = RotationConfig(
            grace_ms=settings.SCHEDULER_LEASE_GRACE_MS,
            batch_size=settings.SCHEDULER_CONSUME_BATCH,
            poll_timeout_ms=settings.SCHEDULER_POLL_TIMEOUT_MS,
        )
        self.heartbeat: Heartbeat | None = None
        self._runners: dict[str, SliceRunner] = {}

    def runner(self, member: str) -> SliceRunner:
        """Return the slice runner acting as `member`, the same for each of its
        turns: it keeps the policies its fenced claims answered, so a turn on a
        lane it held before reads none before its lease."""
        if member not in self._runners:
            self._runners[member] = SliceRunner(
                member=member,
                config=self.config,
                store=self.store,
                leases=self.leases,
                consumers=self.consumers,
                members=self.members,
                turns=self.turns,
                scheduler=self.scheduler,
                limiter=self.limiter,
                shutdown=SHUTDOWN,
            )
        return self._runners[member]

    def kick_lanes(self, topics: Sequence[str] | None = None) -> int:
        """Start idle lanes that have work (of `topics`, if given); return how
        many. Redis being down only delays them: the watchdog starts them."""
        try:
            return len(self.scheduler.kick(topics))
        except (redis.RedisError, RotationError) as exc:
            logger.warning("Could not start lanes now (%s); the watchdog will.", exc)
            return 0


@functools.cache
def runtime() -> Runtime:
    """Return this process's Runtime, building it on first use."""
    return Runtime()


def signals_connect() -> None:
    """Connect the worker signal receivers below (called once, at app ready);
    the publish stamp runs in every process that sends tasks (beat above all)."""
    before_task_publish.connect(_sent_at_stamp, weak=False)
    worker_process_init.connect(_runtime_build, weak=False)
    worker_ready.connect(_member_join, weak=False)
    worker_shutting_down.connect(_member_stopping, weak=False)
    worker_shutdown.connect(_member_leave, weak=False)


def _sent_at_stamp(sender: str, headers: dict, **_: object) -> None:
    """Stamp a schedule run with the time it was sent, kept on redelivery."""
    if sender == SCHEDULE_RUN_TASK:
        headers.setdefault(SENT_AT_HEADER, time.time())


def _runtime_build(**_: object) -> None:
    """Build the runtime before the first task: a new idempotent producer needs
    about half a second before it can send."""
    runtime()


def _consumes_rotation(consumer: object) -> bool:
    queues = consumer.app.amqp.queues.consume_from  # type: ignore[attr-defined]
    return ROTATION_QUEUE in (queues or {})


def _member_join(sender: object, **_: object) -> None:
    """Start heartbeats and offer this worker for turns, if it runs rotation."""
    if not _consumes_rotation(sender):
        return
    state = runtime()
    name = sender.hostname  # type: ignore[attr-defined]
    state.heartbeat = Heartbeat(
        state.members, name, hostname=socket.gethostname(), pid=os.getpid()
    )
    state.heartbeat.start()
    state.members.mark_idle(name)
    logger.info("Rotation member %s joined", name)


def _member_stopping(**_: object) -> None:
    """End the slice in hand after its current message (it hands the lane on)."""
    SHUTDOWN.set()


def _member_leave(**_: object) -> None:
    state = runtime()
    if state.heartbeat is None:
        return
    state.heartbeat.stop()
    state.members.leave(state.heartbeat.name)
    state.consumers.close_all()
    logger.info("Rotation member %s left", state.heartbeat.name)
