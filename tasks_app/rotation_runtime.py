"""Wire the framework-free rotation to Django settings, Redis and Celery.

One Runtime per process, built lazily (so after a fork) from settings. Celery
worker signals make a rotation worker a member: heartbeats while it runs, and a
shutdown flag that ends the slice in hand and hands its lane on at once.
"""

import functools
import logging
import os
import socket
import threading

from celery.signals import worker_ready, worker_shutdown, worker_shutting_down
from celery.utils.nodenames import worker_direct
from django.conf import settings

from rotation.consumer import ConsumerCache
from rotation.lease import LeaseManager
from rotation.members import Heartbeat, Members
from rotation.scheduler import Scheduler
from rotation.slice import RotationConfig, SliceRunner
from rotation.turns import Turn, Turns
from tasks_app.redis_client import redis_client
from tasks_app.services.execution import batch_process
from tasks_app.services.healing import lane_heal
from tasks_app.services.lanes import DatabaseLaneStore

logger = logging.getLogger(__name__)

ROTATION_QUEUE = "rotation"
# A queued turn due this many watchdog ticks ago while a member sat idle lost
# its wake-up and is queued again (a spare wake-up claims nothing, so erring
# early costs little).
STUCK_AFTER_TICKS = 2

SHUTDOWN = threading.Event()


def _send_turn(turn: Turn, delay_s: float) -> None:
    """Queue a turn for its chosen member, or on the shared rotation queue."""
    from tasks_app.tasks import run_slice

    options: dict = {"countdown": delay_s} if delay_s else {}
    options["queue"] = worker_direct(turn.member) if turn.member else ROTATION_QUEUE
    run_slice.apply_async(args=[turn.to_message()], **options)


class Runtime:
    """The rotation objects of this process."""

    def __init__(self) -> None:
        client = redis_client()
        self.members = Members(client, heartbeat_s=settings.SCHEDULER_HEARTBEAT_S)
        self.leases = LeaseManager(client)
        self.store = DatabaseLaneStore(batch_process, lane_heal)
        self.turns = Turns(client, self.members, _send_turn)
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

    def runner(self, member: str) -> SliceRunner:
        """Return a slice runner acting as `member`."""
        return SliceRunner(
            member=member,
            config=self.config,
            store=self.store,
            leases=self.leases,
            consumers=self.consumers,
            members=self.members,
            turns=self.turns,
            scheduler=self.scheduler,
            shutdown=SHUTDOWN,
        )


@functools.cache
def _runtime_for(pid: int) -> Runtime:
    return Runtime()


def runtime() -> Runtime:
    """Return this process's Runtime (a forked child builds its own)."""
    return _runtime_for(os.getpid())


def _consumes_rotation(consumer: object) -> bool:
    queues = consumer.app.amqp.queues.consume_from  # type: ignore[attr-defined]
    return ROTATION_QUEUE in (queues or {})


@worker_ready.connect
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


@worker_shutting_down.connect
def _member_stopping(**_: object) -> None:
    """End the slice in hand after its current message (it hands the lane on)."""
    SHUTDOWN.set()


@worker_shutdown.connect
def _member_leave(sender: object, **_: object) -> None:
    state = runtime()
    if state.heartbeat is None:
        return
    state.heartbeat.stop()
    state.members.leave(state.heartbeat.name)
    state.consumers.close_all()
    logger.info("Rotation member %s left", state.heartbeat.name)
