"""Run slices in the test process against the real stores: PostgreSQL, Redis, Kafka.

The end-to-end tests run real Celery workers; these helpers drive one
SliceRunner directly, so a test can inject a fault at an exact point and look
at what the slice left behind. Wake-ups are collected instead of sent to Celery.
"""

import functools
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from rotation.kafka.consumer import ConsumerCache
from rotation.lanes import Lane
from rotation.lease import LeaseManager
from rotation.members import Members
from rotation.rate_limit import RateLimiter
from rotation.scheduler import Scheduler
from rotation.slice import RotationConfig, SliceRunner
from rotation.store import LaneClaim, LaneStore, SliceRecord
from rotation.turns import Turn, Turns
from tasks_app.models import Task
from tasks_app.services.execution import batch_process
from tasks_app.services.healing import lane_heal
from tasks_app.services.lane_store import DatabaseLaneStore
from tasks_app.services.tasks import TaskSpec, task_submit_many
from tests.cluster import redis_database
from tests.publishing_helpers import producer_for, publish_pending
from tests.rotation_support import make_topic, submit

# A Redis database of its own: the ready set and member keys are per database.
HARNESS_REDIS_DB = 12


@dataclass
class Harness:
    """One member's slice runner and what it sent."""

    runner: SliceRunner
    client: redis.Redis
    sent: list[Turn] = field(default_factory=list)

    def close(self) -> None:
        """Close this runner's Kafka consumers (before the broker stops)."""
        self.runner.consumers.close_all()

    def run_turn(self, lane: Lane) -> SliceRecord | None:
        """Queue a turn for the lane and run it as this member."""
        turn = self.runner.turns.enqueue(f"lane:{lane}", lane)
        self.sent.clear()
        return self.runner.run(turn)


def heal_here() -> Callable[..., LaneClaim]:
    """Return the healing the workers' lane store gets, with this process's
    producer for the broker the test uses."""
    producer = producer_for(os.environ["KAFKA_BOOTSTRAP_SERVERS"])
    return functools.partial(lane_heal, producer=producer)


def lane_store() -> DatabaseLaneStore:
    """Build the workers' lane store, as the worker runtime does."""
    return DatabaseLaneStore(process_batch=batch_process, heal=heal_here())


def harness(
    store: LaneStore | None = None, *, member: str = "m1", fresh: bool = True
) -> Harness:
    """Build a SliceRunner on the real lane store and the harness's Redis
    database: a clean one, unless it is another member of a `fresh` one."""
    client = redis_database(HARNESS_REDIS_DB)
    if fresh:
        client.flushdb()
    sent: list[Turn] = []
    members = Members(client, heartbeat_s=1.0)
    members.beat(member, hostname="test", pid=os.getpid())
    leases = LeaseManager(client)
    store = store or lane_store()
    turns = Turns(client, members, lambda turn, delay_s: sent.append(turn))
    scheduler = Scheduler(
        client=client,
        store=store,
        turns=turns,
        leases=leases,
        members=members,
        stuck_after_s=2.0,
    )
    runner = SliceRunner(
        member=member,
        config=RotationConfig(grace_ms=500, batch_size=50, poll_timeout_ms=50),
        store=store,
        leases=leases,
        consumers=ConsumerCache(os.environ["KAFKA_BOOTSTRAP_SERVERS"]),
        members=members,
        turns=turns,
        scheduler=scheduler,
        limiter=RateLimiter(client),
        shutdown=threading.Event(),
    )
    return Harness(runner, client, sent)


def published_topic(
    count: int, *, sleep_ms: int = 0, **policy: object
) -> tuple[Lane, list[Task]]:
    """Create a fresh topic, submit `count` tasks (each asking the recording
    handler to sleep `sleep_ms`, if given) and publish them to Kafka."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    policy.setdefault("slice_ms", 1000)
    make_topic(name, **policy)
    slow = {"sleep_ms": sleep_ms} if sleep_ms else {}
    tasks = submit(name, [{"n": n, **slow} for n in range(count)])
    publish_pending()
    return Lane("default", name, 0), [Task.objects.get(pk=t.pk) for t in tasks]


def keyed_topic(messages: list[tuple[str, dict]], **policy: object) -> Lane:
    """Create a fresh one-partition topic and publish (key, message) pairs in order."""
    name = f"kc-{uuid.uuid4().hex[:12]}"
    policy.setdefault("slice_ms", 1000)
    make_topic(name, **policy)
    specs = [TaskSpec(topic=name, message=m, key=k) for k, m in messages]
    task_submit_many(submitted_by=None, specs=specs)
    publish_pending()
    return Lane("default", name, 0)
