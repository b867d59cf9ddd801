"""Celery tasks: thin wrappers that call one service and own retry/ack policy.

They take primitives, get their side effects from the worker runtime
(tasks_app.worker) and pass them to the services.
"""

from celery import Task, shared_task

from rotation.turns import Turn
from tasks_app.services.growth import growth_barriers_clear
from tasks_app.services.publisher.run import publish_pending_run
from tasks_app.services.retention import retention_purge_run
from tasks_app.worker import runtime


@shared_task(ignore_result=True, acks_late=False)
def publish_pending() -> int:
    """Move due tasks from the outbox to Kafka; return how many were published.

    Acknowledged early: a lost run is harmless, beat starts another within
    SCHEDULER_PUBLISH_INTERVAL and nothing leaves the outbox unpublished.
    """
    state = runtime()
    return publish_pending_run(producer=state.producer, kick_lanes=state.kick_lanes)


@shared_task(bind=True, ignore_result=True, acks_late=True)
def run_slice(self: Task, turn: dict) -> int:
    """Run one turn on a lane; return how many messages it processed.

    Late acks with reject-on-worker-lost: a turn lost with its worker is
    redelivered, and then does nothing because the watchdog queued a newer one.
    """
    record = runtime().runner(self.request.hostname).run(Turn.from_message(turn))
    return record.messages if record else 0


@shared_task(ignore_result=True, acks_late=False)
def lanes_kick(topics: list[str]) -> int:
    """Start the idle lanes of `topics` that have work (a topic was resumed)."""
    return runtime().kick_lanes(topics)


@shared_task(ignore_result=True, acks_late=False)
def watchdog() -> int:
    """Queue turns for lanes with work that have no holder and no queued turn
    (also lanes a passed growth barrier set free), and tidy passed barriers."""
    growth_barriers_clear()
    return runtime().kick_lanes()


@shared_task(ignore_result=True, acks_late=False)
def purge_finished() -> int:
    """Delete finished tasks past SCHEDULER_RETENTION_DAYS; return how many.

    Acknowledged early: a lost run is harmless, beat starts the next one.
    """
    return retention_purge_run()
