"""The database side of the rotation: policies, fenced claims, backlog, slices."""

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.db import Error as DjangoDatabaseError
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

from rotation.consumer import Record
from rotation.errors import RotationError
from rotation.lanes import Lane, LanePolicy
from rotation.store import (
    BatchOutcome,
    Fenced,
    LaneClaim,
    LaneView,
    SliceRecord,
    StoreUnavailable,
)
from tasks_app.models import ConsumerGroup, PartitionHead, Slice, Topic, WalkMode

logger = logging.getLogger(__name__)

# How far a lane may read: its partition's recorded end, except after the topic's
# partitions grew. Keys may map to other partitions since; messages published
# after the growth (from where each old partition's log ended then; all of a new
# partition's) wait until every old partition's lane has passed its barrier, so
# each key's older tasks finish first. {group}, {topic} and {partition} are SQL
# expressions naming the lane.
_BARRIER_OPEN_SQL = """NOT EXISTS (
    SELECT 1 FROM jsonb_each_text(t.growth_barrier) AS b(p, o)
      LEFT JOIN tasks_app_lanestate s
        ON s.group_id = {group} AND s.topic_id = t.id AND s.partition = b.p::int
     WHERE COALESCE(s.next_offset, 0) < b.o::bigint)"""
_RUNNABLE_END_SQL = (
    """(
SELECT CASE WHEN t.growth_barrier IS NULL OR """
    + _BARRIER_OPEN_SQL
    + """
            THEN COALESCE(h.end_offset, 0)
            ELSE LEAST(COALESCE(h.end_offset, 0),
                       COALESCE((t.growth_barrier ->> ({partition})::text)::bigint, 0))
       END
  FROM tasks_app_topic t
  LEFT JOIN tasks_app_partitionhead h
    ON h.topic_id = t.id AND h.partition = {partition}
 WHERE t.id = {topic})"""
)


def _runnable_end(*, group: str, topic: str, partition: str) -> str:
    """Spell _RUNNABLE_END_SQL for a lane named by these SQL expressions."""
    return _RUNNABLE_END_SQL.format(group=group, topic=topic, partition=partition)


# Raise the lane's epoch to the new token and mark the lane unsettled until this
# holder records the end of its slice. When the previous holder never got that
# far it died mid-slice, maybe killed by a handler: the tasks it ran and did not
# record lie within one batch of the resume point, so the lane is careful up to
# there. Answer the resume point and that bound, and where the partition's log
# ends, whether Kafka lost it, and the topic's Kafka id, as PostgreSQL records.
_CLAIM_SQL = """
WITH previous AS (
    SELECT settled FROM tasks_app_lanestate
     WHERE group_id = %(group)s AND topic_id = %(topic)s AND partition = %(partition)s
)
INSERT INTO tasks_app_lanestate (group_id, topic_id, partition, epoch, next_offset,
                                 settled, careful_until, updated_at)
VALUES (%(group)s, %(topic)s, %(partition)s, %(token)s, 0, false, 0, now())
ON CONFLICT (group_id, topic_id, partition) DO UPDATE
   SET epoch = EXCLUDED.epoch, settled = false, updated_at = now(),
       careful_until = CASE
           WHEN (SELECT settled FROM previous) THEN tasks_app_lanestate.careful_until
           ELSE GREATEST(tasks_app_lanestate.careful_until,
                         tasks_app_lanestate.next_offset + %(batch)s)
       END
 WHERE tasks_app_lanestate.epoch < EXCLUDED.epoch
RETURNING next_offset, careful_until,
          {runnable_end},
          COALESCE((SELECT lost FROM tasks_app_partitionhead
                     WHERE topic_id = %(topic)s AND partition = %(partition)s), false),
          (SELECT kafka_topic_id FROM tasks_app_topic WHERE id = %(topic)s)
""".replace(
    "{runnable_end}",
    _runnable_end(group="%(group)s", topic="%(topic)s", partition="%(partition)s"),
)
_END_SQL = "SELECT " + _runnable_end(
    group="%(group)s", topic="%(topic)s", partition="%(partition)s"
)
_SETTLE_SQL = """
UPDATE tasks_app_lanestate SET settled = true
 WHERE group_id = %s AND topic_id = %s AND partition = %s AND epoch = %s
"""
_OVERVIEW_SQL = """
SELECT g.group_id, tp.name, p.partition, g.walk_mode, tp.slice_ms, tp.weight,
       tp.paused, {runnable_end} > COALESCE(s.next_offset, 0)
  FROM tasks_app_consumergroup g
  JOIN tasks_app_consumergroup_topics gt ON gt.consumergroup_id = g.id
  JOIN tasks_app_topic tp ON tp.id = gt.topic_id
 CROSS JOIN LATERAL generate_series(0, tp.partitions - 1) AS p(partition)
  LEFT JOIN tasks_app_lanestate s
    ON s.group_id = g.id AND s.topic_id = tp.id AND s.partition = p.partition
 ORDER BY g.group_id, tp.name, p.partition
""".replace(
    "{runnable_end}",
    _runnable_end(group="g.id", topic="tp.id", partition="p.partition"),
)
_BARRIER_PASSED_SQL = (
    "SELECT "
    + _BARRIER_OPEN_SQL.format(group="gt.consumergroup_id")
    + """
  FROM tasks_app_topic t
  JOIN tasks_app_consumergroup_topics gt ON gt.topic_id = t.id
 WHERE t.id = %s"""
)


def _store_errors(method: Callable) -> Callable:
    """Turn database failures into StoreUnavailable naming PostgreSQL.

    `django.db.Error` covers both a failed statement (DatabaseError) and a
    connection that is unusable (InterfaceError, e.g. after a server restart).
    A broken connection is dropped at once, so the slice's remaining writes
    (its record, the next turn) reconnect instead of failing too.
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
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


class DatabaseLaneStore:
    """The LaneStore the Celery workers use (see rotation/store.py)."""

    def __init__(
        self,
        process_batch: Callable[..., BatchOutcome],
        heal: Callable[..., LaneClaim],
    ):
        self._process_batch = process_batch
        self._heal = heal
        self._ids: dict[tuple[str, str], tuple[int, int]] = {}

    def ids(self, lane: Lane) -> tuple[int, int]:
        """Return (group pk, topic pk) for a lane; names never change, so cache."""
        names = (lane.group, lane.topic)
        if names not in self._ids:
            group_pk = ConsumerGroup.objects.values_list("pk", flat=True).get(
                group_id=lane.group
            )
            topic_pk = Topic.objects.values_list("pk", flat=True).get(name=lane.topic)
            self._ids[names] = (group_pk, topic_pk)
        return self._ids[names]

    @_store_errors
    def policy(self, lane: Lane) -> LanePolicy | None:
        """Read the topic's slice, weight, pause flag and the group's walk mode."""
        row = (
            ConsumerGroup.objects.filter(group_id=lane.group, topics__name=lane.topic)
            .values_list(
                "walk_mode", "topics__slice_ms", "topics__weight", "topics__paused"
            )
            .first()
        )
        if row is None:
            return None
        walk_mode, slice_ms, weight, paused = row
        return LanePolicy(
            slice_ms=slice_ms,
            weight=weight,
            paused=paused,
            sequential=walk_mode == WalkMode.SEQUENTIAL,
        )

    @_store_errors
    def claim(self, lane: Lane, token: int) -> LaneClaim:
        """Make `token` the lane's epoch; return what the holder needs to know
        (see _CLAIM_SQL and LaneClaim)."""
        group_pk, topic_pk = self.ids(lane)
        params = {
            "group": group_pk,
            "topic": topic_pk,
            "partition": lane.partition,
            "token": token,
            "batch": settings.SCHEDULER_CONSUME_BATCH,
        }
        with transaction.atomic(), connection.cursor() as cursor:
            _limit_transaction(cursor)
            cursor.execute(_CLAIM_SQL, params)
            row = cursor.fetchone()
            if row is not None:
                return LaneClaim(*row)
            cursor.execute(
                "SELECT epoch FROM tasks_app_lanestate WHERE group_id = %s AND "
                "topic_id = %s AND partition = %s",
                [group_pk, topic_pk, lane.partition],
            )
            raise Fenced(lane, token, cursor.fetchone()[0])

    @_store_errors
    def end_offset(self, lane: Lane) -> int:
        """Return how far the lane may read: the offset after the last task
        published to it, or its growth barrier (see _RUNNABLE_END_SQL)."""
        group_pk, topic_pk = self.ids(lane)
        params = {"group": group_pk, "topic": topic_pk, "partition": lane.partition}
        with connection.cursor() as cursor:
            cursor.execute(_END_SQL, params)
            return cursor.fetchone()[0]

    @_store_errors
    def log_lost(self, lane: Lane, reason: str) -> None:
        """Flag the lane's partition as lost in Kafka; its next claim heals it."""
        _, topic_pk = self.ids(lane)
        partition_lost(topic_pk=topic_pk, partition=lane.partition, reason=reason)

    @_store_errors
    def heal(self, lane: Lane, token: int) -> LaneClaim:
        """Publish the lane's unfinished tasks again (tasks_app.services.healing)."""
        return self._heal(lane=lane, token=token, lane_ids=self.ids(lane))

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
        return self._process_batch(
            lane=lane,
            token=token,
            member=member,
            messages=messages,
            deadline=deadline,
            interrupted=interrupted,
            lane_ids=self.ids(lane),
            careful_until=careful_until,
        )

    @_store_errors
    def record_slice(self, record: SliceRecord) -> None:
        """Store a finished slice for /api/slices/ and the admin, and mark the
        lane settled: its holder lived to the end of the slice (fenced)."""
        group_pk, topic_pk = self.ids(record.lane)
        with transaction.atomic():
            Slice.objects.create(
                group_id=group_pk,
                topic_id=topic_pk,
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
            with connection.cursor() as cursor:
                cursor.execute(
                    _SETTLE_SQL,
                    [group_pk, topic_pk, record.lane.partition, record.token],
                )

    @_store_errors
    def overview(self) -> list[LaneView]:
        """List every lane with its policy and whether it has a backlog."""
        with connection.cursor() as cursor:
            cursor.execute(_OVERVIEW_SQL)
            rows = cursor.fetchall()
        return [_lane_view(*row) for row in rows]


def _lane_view(
    group: str,
    topic: str,
    partition: int,
    walk_mode: str,
    slice_ms: int,
    weight: int,
    paused: bool,
    has_backlog: bool,
) -> LaneView:
    policy = LanePolicy(
        slice_ms=slice_ms,
        weight=weight,
        paused=paused,
        sequential=walk_mode == WalkMode.SEQUENTIAL,
    )
    return LaneView(Lane(group, topic, partition), policy, has_backlog)


# Limits for the lane's fenced transactions, as SET LOCAL values (ms). A holder
# that freezes (SIGSTOP, network split) between its fence check and COMMIT keeps
# the lane's row locked; PostgreSQL ends its transaction once it has been idle
# for the lease grace, so the next holder waits for about that long, not for as
# long as the frozen process stays frozen. The claim waits for the row lock a
# little longer than that, so it normally goes through on its first try.
_LIMITS_SQL = """
SELECT set_config('idle_in_transaction_session_timeout', %s, true),
       set_config('lock_timeout', %s, true),
       set_config('statement_timeout', %s, true)
"""
# A fenced statement moves at most a batch of rows; far longer means trouble.
STATEMENT_LIMIT_MS = 10_000
_FENCE_SQL = """
SELECT epoch FROM tasks_app_lanestate
 WHERE group_id = %s AND topic_id = %s AND partition = %s
   FOR UPDATE
"""


def _limit_transaction(cursor: CursorWrapper) -> None:
    """Bound how long this transaction may idle, wait for locks, or run a statement."""
    grace_ms = settings.SCHEDULER_LEASE_GRACE_MS
    limits = (grace_ms, 2 * grace_ms, max(STATEMENT_LIMIT_MS, 2 * grace_ms))
    cursor.execute(_LIMITS_SQL, [str(limit) for limit in limits])


@contextmanager
def lane_fenced(
    *, lane: Lane, group_pk: int, topic_pk: int, token: int
) -> Iterator[CursorWrapper]:
    """Open a transaction in which `token` holds the lane; yield its cursor.

    The lane's row is locked first and the block runs only while `token` is its
    epoch, so the check and the writes are one atomic step against a newer
    holder's claim; otherwise Fenced is raised and nothing is written.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        _limit_transaction(cursor)
        cursor.execute(_FENCE_SQL, [group_pk, topic_pk, lane.partition])
        row = cursor.fetchone()
        epoch = row[0] if row else 0  # a lane whose row is gone fences everyone
        if epoch != token:
            raise Fenced(lane, token, epoch)
        yield cursor


# Move each partition's recorded end past a published batch. Offsets only grow
# in a Kafka partition, so a batch that starts below the recorded end went into
# a log that was reset (a broker restarted without its data, a topic created
# again): the partition is flagged lost and its end restarts at the new log's.
# The flag commits with the new tasks' offsets, so a lane that sees those sees it.
_HEADS_ADVANCE_SQL = """
UPDATE tasks_app_partitionhead h
   SET lost = h.lost OR d.reset,
       lost_reason = CASE WHEN d.reset AND NOT h.lost THEN d.reason
                          ELSE h.lost_reason END,
       end_offset = CASE WHEN d.reset THEN d.last + 1
                         ELSE GREATEST(h.end_offset, d.last + 1) END
  FROM (SELECT old.topic_id, x.p, x.last, x.first < old.end_offset AS reset,
               old.lost AS was_lost, t.name,
               format('Kafka placed new messages from offset %%s, below the '
                      'recorded end %%s: the log was reset (a broker restarted '
                      'without its data, or the topic was created again)',
                      x.first, old.end_offset) AS reason
          FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::bigint[])
               AS x(topic, p, first, last)
          JOIN tasks_app_topic t ON t.name = x.topic
          JOIN tasks_app_partitionhead old
            ON old.topic_id = t.id AND old.partition = x.p) AS d
 WHERE h.topic_id = d.topic_id AND h.partition = d.p
RETURNING d.name, d.p, d.reset AND NOT d.was_lost, d.reason
"""
_HEADS_INSERT_SQL = """
INSERT INTO tasks_app_partitionhead (topic_id, partition, end_offset, lost,
                                     lost_reason)
SELECT t.id, x.p, x.last + 1, false, ''
  FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::bigint[])
       AS x(topic, p, first, last)
  JOIN tasks_app_topic t ON t.name = x.topic
ON CONFLICT (topic_id, partition) DO NOTHING
"""


def growth_barrier_passed(*, topic: Topic) -> bool:
    """Tell whether every old partition's lane has passed the topic's barrier."""
    with connection.cursor() as cursor:
        cursor.execute(_BARRIER_PASSED_SQL, [topic.pk])
        row = cursor.fetchone()
    return row is None or bool(row[0])


def partition_lost(*, topic_pk: int, partition: int, reason: str) -> None:
    """Flag a partition whose messages Kafka lost (its lane heals before running
    anything); log it once, when the flag is first set."""
    flagged = PartitionHead.objects.filter(
        topic_id=topic_pk, partition=partition, lost=False
    ).update(lost=True, lost_reason=reason)
    if flagged:
        logger.warning("Partition %s/%d lost in Kafka: %s", topic_pk, partition, reason)


def partition_heads_advance(*, deliveries: Sequence[tuple[str, int, int, int]]) -> None:
    """Record where each partition's log now ends, from (topic, partition, first
    offset, last offset) of a published batch; call in the publisher's
    transaction. A log found reset is flagged lost (see _HEADS_ADVANCE_SQL)."""
    if not deliveries:
        return
    columns = [list(column) for column in zip(*deliveries, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(_HEADS_ADVANCE_SQL, columns)
        flagged = [row for row in cursor.fetchall() if row[2]]
        cursor.execute(_HEADS_INSERT_SQL, columns)
    for topic, partition, _, reason in flagged:
        logger.warning("Partition %s/%d lost in Kafka: %s", topic, partition, reason)


def lanes_kick(*, topics: Sequence[str]) -> None:
    """Start idle lanes of `topics` that now have work, without waiting for beat."""
    from tasks_app.rotation_runtime import runtime

    try:
        runtime().scheduler.kick(topics)
    except (redis.RedisError, RotationError) as exc:
        logger.warning(
            "Could not start lanes of %s now (%s); the watchdog will.",
            ", ".join(topics),
            exc,
        )
