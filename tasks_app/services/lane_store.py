"""The LaneStore the rotation runs on (rotation/store.py), backed by PostgreSQL.

An adapter: each method calls the module that owns its part (the lane fencing
protocol in lane_state, partition heads in publisher.heads, growth barriers in
growth), turns database failures into StoreUnavailable, and counts the
fence's refusals (rotation_events, for /metrics). Running handlers
and healing are injected by the worker runtime, which owns the producer.
"""

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.db import Error as DjangoDatabaseError
from django.db import connection

from rotation.kafka.consumer import Record
from rotation.lanes import Lane, LanePolicy
from rotation.store import (
    BatchOutcome,
    Fenced,
    LaneClaim,
    LaneView,
    SliceRecord,
    StoreUnavailable,
)
from tasks_app.models import ConsumerGroup, Slice, Topic
from tasks_app.services.growth import runnable_end_sql
from tasks_app.services.lane_state import (
    POLICY_FIELDS_SQL,
    LaneRef,
    lane_claim,
    lane_policy,
    lane_policy_from,
    lane_settle,
)
from tasks_app.services.partition_heads import partition_lost
from tasks_app.services.rotation_events import RotationEvent, rotation_event_count
from tasks_app.services.sql import sql

P = ParamSpec("P")
R = TypeVar("R")
ProcessBatch = Callable[..., BatchOutcome]
"""tasks_app.services.execution.batch_process"""
Heal = Callable[..., LaneClaim]
"""tasks_app.services.healing.lane_heal, with the worker's producer bound"""

_END_SQL = "SELECT " + runnable_end_sql(
    group="%(group)s", topic="%(topic)s", partition="%(partition)s"
)
# A lane has work when it may read past its resume point, or when Kafka lost its
# messages: after a reset the new log may end below the resume point, and the
# lane must still get a turn to heal.
_OVERVIEW_SQL = sql(
    """
SELECT g.group_id, tp.name, p.partition, {policy},
       {runnable_end} > COALESCE(s.next_offset, 0) OR COALESCE(h.lost, false)
  FROM {consumergroup} g
  JOIN {grouptopic} gt ON gt.consumergroup_id = g.id
  JOIN {topic} tp ON tp.id = gt.topic_id
 CROSS JOIN LATERAL generate_series(0, tp.partitions - 1) AS p(partition)
  LEFT JOIN {lanestate} s
    ON s.group_id = g.id AND s.topic_id = tp.id AND s.partition = p.partition
  LEFT JOIN {partitionhead} h
    ON h.topic_id = tp.id AND h.partition = p.partition
 ORDER BY g.group_id, tp.name, p.partition
""",
    runnable_end=runnable_end_sql(group="g.id", topic="tp.id", partition="p.partition"),
    policy=POLICY_FIELDS_SQL,
)


def _store_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Turn database failures into StoreUnavailable naming PostgreSQL.

    `django.db.Error` covers both a failed statement (DatabaseError) and a
    connection that is unusable (InterfaceError, e.g. after a server restart).
    A broken connection is dropped at once, so the slice's remaining writes
    (its record, the next turn) reconnect instead of failing too.
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except DjangoDatabaseError as exc:
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()
            raise StoreUnavailable(
                f"PostgreSQL failed during {method.__name__}: {exc}; check the "
                "database server"
            ) from exc

    return wrapper


LaneMethod = Callable[Concatenate[Any, Lane, P], R]


def _refusals_counted(method: LaneMethod[P, R]) -> LaneMethod[P, R]:
    """Count each stale token the database fence refuses (rotation_events):
    no row records a refusal, and operators watch for them (/metrics)."""

    @functools.wraps(method)
    def wrapper(store: Any, lane: Lane, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(store, lane, *args, **kwargs)
        except Fenced:
            rotation_event_count(
                event=RotationEvent.FENCED, group=lane.group, topic=lane.topic
            )
            raise

    return wrapper


class DatabaseLaneStore:
    """The LaneStore the Celery workers use (see rotation/store.py)."""

    def __init__(self, *, process_batch: ProcessBatch, heal: Heal) -> None:
        self._process_batch = process_batch
        self._heal = heal
        self._refs: dict[Lane, LaneRef] = {}
        # Each lane's topic as read after a claim, by the row version claimed.
        self._topics: dict[Lane, tuple[str, Topic]] = {}
        self._topic_versions: dict[Lane, str] = {}  # as the last claim answered

    def ref(self, lane: Lane) -> LaneRef:
        """Return the lane with its row's keys; names never change, so cache."""
        if lane not in self._refs:
            group_pk = ConsumerGroup.objects.values_list("pk", flat=True).get(
                group_id=lane.group
            )
            topic_pk = Topic.objects.values_list("pk", flat=True).get(name=lane.topic)
            self._refs[lane] = LaneRef(lane, group_pk, topic_pk)
        return self._refs[lane]

    def _slice_topic(self, ref: LaneRef) -> Topic:
        """Return the lane's topic, read again only when the fenced claim found
        its row changed: a hand-off's first batch waits for that read. A change
        made during a slice applies from the next slice. (A row read after the
        claim may be newer than the claimed version; the next claim then
        differs, and it is read again.)"""
        version = self._topic_versions.get(ref.lane)
        cached = self._topics.get(ref.lane)
        if version is None or cached is None or cached[0] != version:
            cached = (version or "", Topic.objects.get(pk=ref.topic_pk))
            self._topics[ref.lane] = cached
        return cached[1]

    @_store_errors
    def policy(self, lane: Lane) -> LanePolicy | None:
        """Read the topic's slice, weight, pause flag, rate limit and the
        group's walk mode."""
        try:
            return lane_policy(ref=self.ref(lane))
        except ObjectDoesNotExist:  # the group or the topic was deleted
            return None

    @_refusals_counted
    @_store_errors
    def claim(self, lane: Lane, token: int) -> LaneClaim:
        """Make `token` the lane's epoch; see lane_state.lane_claim."""
        claim, self._topic_versions[lane] = lane_claim(ref=self.ref(lane), token=token)
        return claim

    @_store_errors
    def end_offset(self, lane: Lane) -> int:
        """Return how far the lane may read (its log's end, or a growth barrier)."""
        with connection.cursor() as cursor:
            cursor.execute(_END_SQL, self.ref(lane).params)
            return int(cursor.fetchone()[0])

    @_store_errors
    def log_lost(self, lane: Lane, reason: str) -> None:
        """Flag the lane's partition as lost in Kafka; its next claim heals it."""
        ref = self.ref(lane)
        partition_lost(topic_pk=ref.topic_pk, partition=lane.partition, reason=reason)

    @_refusals_counted
    @_store_errors
    def heal(self, lane: Lane, token: int) -> LaneClaim:
        """Publish the lane's unfinished tasks again (tasks_app.services.healing)."""
        return self._heal(ref=self.ref(lane), token=token)

    @_refusals_counted
    @_store_errors
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
        """Run the batch's tasks through tasks_app.services.execution."""
        ref = self.ref(lane)
        return self._process_batch(
            ref=ref,
            topic=self._slice_topic(ref),
            token=token,
            member=member,
            messages=messages,
            deadline=deadline,
            interrupted=interrupted,
            careful_until=careful_until,
        )

    @_store_errors
    def settle(self, lane: Lane, token: int) -> None:
        """Mark the lane settled: its holder lived to the end of the slice
        (fenced: a stale holder's note changes nothing)."""
        lane_settle(ref=self.ref(lane), token=token)

    @_store_errors
    def record_slice(self, record: SliceRecord) -> None:
        """Store a finished slice for /api/slices/ and the admin."""
        ref = self.ref(record.lane)
        Slice.objects.create(
            group_id=ref.group_pk,
            topic_id=ref.topic_pk,
            partition=record.lane.partition,
            member=record.member,
            token=record.token,
            started_at=datetime.fromtimestamp(record.started_at, UTC),
            ended_at=datetime.fromtimestamp(record.ended_at, UTC),
            messages=record.messages,
            first_offset=record.first_offset,
            last_offset=record.last_offset,
            end_reason=record.end_reason,
        )

    @_store_errors
    def overview(self) -> list[LaneView]:
        """List every lane with its policy and whether it has work."""
        with connection.cursor() as cursor:
            cursor.execute(_OVERVIEW_SQL)
            rows = cursor.fetchall()
        return [
            LaneView(Lane(group, topic, partition), lane_policy_from(policy), backlog)
            for group, topic, partition, policy, backlog in rows
        ]
