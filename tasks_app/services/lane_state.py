"""The lane fencing protocol: the only code that writes LaneState.

A lane's row holds its epoch (the newest fencing token that claimed it), its
resume point and what the next holder must know. A holder claims the row with
its token; every write afterwards happens inside `lane_fenced`, which locks the
row and refuses the block unless the token is still the epoch, so a holder
whose lease expired (a paused process, a network split) writes nothing.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

from rotation.lanes import Lane, LanePolicy
from rotation.rate_limit import rate_limit_for
from rotation.store import Fenced, LaneClaim
from tasks_app.models import WalkMode
from tasks_app.services.growth import runnable_end_sql
from tasks_app.services.partition_heads import LOST_FLAG_SQL
from tasks_app.services.sql import sql


@dataclass(frozen=True)
class LaneRef:
    """A lane by its names (for messages) and by its row's keys (for SQL)."""

    lane: Lane
    group_pk: int
    topic_pk: int

    @property
    def params(self) -> dict[str, int]:
        """Name the row's keys for a statement's %(group)s, %(topic)s, %(partition)s."""
        return {
            "group": self.group_pk,
            "topic": self.topic_pk,
            "partition": self.lane.partition,
        }


# A lane's policy as one JSON array, from its group `g` and its topic `tp`;
# lane_policy_from() reads it.
POLICY_FIELDS_SQL = """json_build_array(g.walk_mode, tp.slice_ms, tp.weight,
                                  tp.paused, tp.rate_limit, tp.rate_burst)"""
# The lane's policy, NULL when its group no longer reads its topic.
_POLICY_SQL = sql(
    """
(SELECT {fields}
   FROM {consumergroup} g
   JOIN {grouptopic} gt ON gt.consumergroup_id = g.id
   JOIN {topic} tp ON tp.id = gt.topic_id
  WHERE g.id = %(group)s AND tp.id = %(topic)s)
""",
    fields=POLICY_FIELDS_SQL,
)
# Raise the lane's epoch to the new token and mark the lane unsettled until this
# holder records the end of its slice. When the previous holder never got that
# far it died mid-slice, maybe killed by a handler: the tasks it ran and did not
# record lie within one batch of the resume point, so the lane is careful up to
# there. Answer the resume point and that bound, how far the lane may read,
# whether Kafka lost its messages, the topic's Kafka id and the lane's policy,
# and the version of the topic's row: its xmin, which every write to the row
# changes (a bare `.update()` too), so a holder can tell its copy is current.
# One statement, its own transaction: a hand-off waits for it, and PostgreSQL
# never waits on the client while it holds the row (a claimant frozen mid-claim
# keeps no lock). Its lock timeout is set first: the inserted row is built from
# `limits`, so that runs before the insert can wait for the row's lock.
_CLAIM_SQL = sql(
    """
WITH previous AS (
    SELECT settled FROM {lanestate}
     WHERE group_id = %(group)s AND topic_id = %(topic)s AND partition = %(partition)s
), limits AS (
    SELECT set_config('lock_timeout', %(lock_timeout)s, true)
)
INSERT INTO {lanestate} (group_id, topic_id, partition, epoch, next_offset,
                         settled, careful_until, updated_at)
SELECT %(group)s, %(topic)s, %(partition)s, %(token)s, 0, false, 0, now() FROM limits
ON CONFLICT (group_id, topic_id, partition) DO UPDATE
   SET epoch = EXCLUDED.epoch, settled = false, updated_at = now(),
       careful_until = CASE
           WHEN (SELECT settled FROM previous) THEN {lanestate}.careful_until
           ELSE GREATEST({lanestate}.careful_until,
                         {lanestate}.next_offset + %(batch)s)
       END
 WHERE {lanestate}.epoch < EXCLUDED.epoch
RETURNING next_offset, careful_until, {runnable_end}, {lost},
          (SELECT kafka_topic_id FROM {topic} WHERE id = %(topic)s), {policy},
          (SELECT xmin::text FROM {topic} WHERE id = %(topic)s)
""",
    runnable_end=runnable_end_sql(
        group="%(group)s", topic="%(topic)s", partition="%(partition)s"
    ),
    lost=LOST_FLAG_SQL,
    policy=_POLICY_SQL,
)
_READ_SQL = sql(
    """
SELECT s.next_offset, s.careful_until, {runnable_end}, {lost}, t.kafka_topic_id,
       {policy}
  FROM {lanestate} s
  JOIN {topic} t ON t.id = s.topic_id
 WHERE s.group_id = %(group)s AND s.topic_id = %(topic)s
   AND s.partition = %(partition)s
""",
    runnable_end=runnable_end_sql(
        group="%(group)s", topic="%(topic)s", partition="%(partition)s"
    ),
    lost=LOST_FLAG_SQL,
    policy=_POLICY_SQL,
)
_POLICY_READ_SQL = "SELECT " + _POLICY_SQL
_EPOCH_SQL = sql(
    "SELECT epoch FROM {lanestate} "
    "WHERE group_id = %(group)s AND topic_id = %(topic)s AND partition = %(partition)s"
)
_FENCE_SQL = _EPOCH_SQL + " FOR UPDATE"
_RESUME_SQL = sql(
    """
UPDATE {lanestate}
   SET next_offset = %(next_offset)s, updated_at = now(),
       careful_until = COALESCE(%(careful_until)s, careful_until)
 WHERE group_id = %(group)s AND topic_id = %(topic)s AND partition = %(partition)s
"""
)
_SETTLE_SQL = sql(
    """
UPDATE {lanestate} SET settled = true
 WHERE group_id = %(group)s AND topic_id = %(topic)s AND partition = %(partition)s
   AND epoch = %(token)s
"""
)
# Limits for the lane's transactions, as SET LOCAL values (ms). A holder that
# freezes (SIGSTOP, network split) between its fence check and COMMIT keeps the
# lane's row locked; PostgreSQL ends its transaction once it has been idle for
# the lease grace, so the next holder waits for about that long, not for as long
# as the frozen process stays frozen. A claim waits for the row lock a little
# longer than that, so it normally goes through on its first try. (A fenced
# block's statements go one at a time: PostgreSQL arms the idle timeout only at a
# pipeline's Sync, so a holder frozen after a pipelined lock would keep it; the
# frozen-holder test in tests/test_lane_faults.py fails.)
_LIMITS_SQL = """
SELECT set_config('idle_in_transaction_session_timeout', %s, true),
       set_config('lock_timeout', %s, true),
       set_config('statement_timeout', %s, true)
"""
# A fenced statement moves at most a batch of rows; far longer means trouble.
STATEMENT_LIMIT_MS = 10_000


def _lock_limit_ms() -> int:
    """How long a lane's statement waits for the row's lock: longer than the
    idle limit that ends a frozen holder's transaction."""
    return 2 * settings.SCHEDULER_LEASE_GRACE_MS


def _limit_transaction(cursor: CursorWrapper) -> None:
    """Bound how long this transaction may idle, wait for locks, or run a statement."""
    grace_ms = settings.SCHEDULER_LEASE_GRACE_MS
    limits = (grace_ms, _lock_limit_ms(), max(STATEMENT_LIMIT_MS, 2 * grace_ms))
    cursor.execute(_LIMITS_SQL, [str(limit) for limit in limits])


def lane_claim(*, ref: LaneRef, token: int) -> tuple[LaneClaim, str]:
    """Make `token` the lane's epoch; return what its holder needs to know, and
    the version of the topic's row (a row read after the claim is that version
    or newer).

    Raise Fenced when the epoch is already `token` or newer. The claim commits
    on its own, so it refuses to run inside a transaction.
    """
    if connection.in_atomic_block:  # a bug in the caller, not a database failure
        raise RuntimeError(
            "lane_claim commits on its own; call it outside transaction.atomic()"
        )
    params = {
        **ref.params,
        "token": token,
        "batch": settings.SCHEDULER_CONSUME_BATCH,
        "lock_timeout": str(_lock_limit_ms()),
    }
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, params)
        row = cursor.fetchone()
        if row is not None:
            return _lane_claim(row[:-1]), row[-1]
        cursor.execute(_EPOCH_SQL, ref.params)
        raise Fenced(ref.lane, token, cursor.fetchone()[0])


def lane_read(*, ref: LaneRef) -> LaneClaim:
    """Return what a claim of the (claimed) lane answers, as it stands now."""
    with connection.cursor() as cursor:
        cursor.execute(_READ_SQL, ref.params)
        return _lane_claim(cursor.fetchone())


def lane_policy(*, ref: LaneRef) -> LanePolicy | None:
    """Read the lane's policy; None when its group no longer reads its topic."""
    with connection.cursor() as cursor:
        cursor.execute(_POLICY_READ_SQL, ref.params)
        return _policy(cursor.fetchone()[0])


def _lane_claim(row: tuple) -> LaneClaim:
    next_offset, careful_until, end_offset, log_lost, kafka_topic_id, policy = row
    return LaneClaim(
        next_offset,
        careful_until,
        end_offset,
        log_lost,
        kafka_topic_id,
        _policy(policy),
    )


def _policy(fields: list | None) -> LanePolicy | None:
    return None if fields is None else lane_policy_from(fields)


def lane_policy_from(fields: list) -> LanePolicy:
    """Build a lane's policy from the array POLICY_FIELDS_SQL selects."""
    walk_mode, slice_ms, weight, paused, rate, burst = fields
    return LanePolicy(
        slice_ms=slice_ms,
        weight=weight,
        paused=paused,
        sequential=walk_mode == WalkMode.SEQUENTIAL,
        rate_limit=rate_limit_for(rate, burst),
    )


@contextmanager
def lane_fenced(*, ref: LaneRef, token: int) -> Iterator[CursorWrapper]:
    """Open a transaction in which `token` holds the lane; yield its cursor.

    The lane's row is locked first and the block runs only while `token` is its
    epoch, so the check and the writes are one atomic step against a newer
    holder's claim; otherwise Fenced is raised and nothing is written.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        _limit_transaction(cursor)
        cursor.execute(_FENCE_SQL, ref.params)
        row = cursor.fetchone()
        epoch = row[0] if row else 0  # a lane whose row is gone fences everyone
        if epoch != token:
            raise Fenced(ref.lane, token, epoch)
        yield cursor


def lane_resume(
    cursor: CursorWrapper,
    *,
    ref: LaneRef,
    next_offset: int,
    careful_until: int | None = None,
) -> None:
    """Move the resume point (and the careful bound, if given); call inside
    `lane_fenced`, with its cursor."""
    params = {**ref.params, "next_offset": next_offset, "careful_until": careful_until}
    cursor.execute(_RESUME_SQL, params)


def lane_settle(*, ref: LaneRef, token: int) -> None:
    """Note that `token`'s holder lived to the end of its slice (fenced: a stale
    holder's note changes nothing)."""
    with connection.cursor() as cursor:
        cursor.execute(_SETTLE_SQL, {**ref.params, "token": token})
