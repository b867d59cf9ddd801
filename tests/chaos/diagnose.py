"""Describe a lane left with unfinished tasks, from PostgreSQL and Redis.

Enough to tell apart a task lost from Kafka (its offset below the lane's resume
point, or past what the broker holds), a lane whose turn waits in Redis with no
wake-up left to run it, and a wake-up parked in Celery's unacknowledged set (a
message a SIGKILLed worker had taken, redelivered only after the visibility
timeout).
"""

from __future__ import annotations

import base64
import json

import redis

from rotation.lanes import KEY_PREFIX, Lane, text
from tests.chaos.environment import GROUP, ChaosEnv

_STUCK_SQL = """
SELECT p.name, t.partition, s.epoch, s.next_offset, h.end_offset, count(*),
       min(t."offset"), string_agg(DISTINCT t.status, ',')
  FROM tasks_app_task t
  JOIN tasks_app_topic p ON p.id = t.topic_id
  LEFT JOIN tasks_app_lanestate s ON s.topic_id = p.id AND s.partition = t.partition
  LEFT JOIN tasks_app_partitionhead h
    ON h.topic_id = p.id AND h.partition = t.partition
 WHERE p.name = ANY(%s) AND t.status NOT IN ('succeeded', 'dead', 'cancelled')
 GROUP BY 1, 2, 3, 4, 5
"""
_LAST_SLICES_SQL = """
SELECT s.member, s.token, s.messages, s.first_offset, s.last_offset, s.end_reason,
       extract(epoch FROM s.started_at)::float8, extract(epoch FROM s.ended_at)::float8
  FROM tasks_app_slice s JOIN tasks_app_topic p ON p.id = s.topic_id
 WHERE p.name = %s ORDER BY s.started_at DESC LIMIT 3
"""
# kombu's Redis transport keeps taken, unacknowledged messages in this hash.
UNACKED_KEY = "unacked"


def stuck_lanes(env: ChaosEnv, topics: list[str]) -> dict:
    """Describe every lane of `topics` with unfinished tasks, and Celery's queues."""
    client = env.app_redis()
    lanes = [
        {
            "topic": name,
            "partition": partition,
            "epoch": epoch,
            "next_offset": next_offset,
            "end_offset": end,
            "unfinished": unfinished,
            "first_unfinished_offset": first,
            "statuses": statuses,
            "redis": _lane_state(client, Lane(GROUP, name, partition)),
            "last_slices": [list(r) for r in env.query(_LAST_SLICES_SQL, [name])],
        }
        for name, partition, epoch, next_offset, end, unfinished, first, statuses in (
            env.query(_STUCK_SQL, [topics])
        )
    ]
    return {"lanes": lanes, "celery": _celery_state(client)}


def _lane_state(client: redis.Redis, lane: Lane) -> dict:
    """The lane's lease, token counter, queued turn and ready-set score."""
    chain = f"lane:{lane}"
    try:
        values = {
            "lease": client.get(lane.key("lease")),
            "token": client.get(lane.key("token")),
            "turn": client.get(f"{KEY_PREFIX}:turn:{chain}"),
        }
        state: dict = {k: v and text(v) for k, v in values.items()}
        state["ready_score"] = client.zscore(f"{KEY_PREFIX}:ready", chain)
    except redis.RedisError as exc:
        return {"error": str(exc)}
    return state


def _celery_state(client: redis.Redis) -> dict:
    """Waiting wake-ups per queue, and the chains of unacknowledged ones."""
    try:
        queues = {
            text(key): client.llen(key)
            for key in client.scan_iter("*")
            if client.type(key) == b"list"
        }
        unacked = [_wake_up_chain(raw) for raw in client.hvals(UNACKED_KEY)]
    except redis.RedisError as exc:
        return {"error": str(exc)}
    return {"queued": queues, "unacked_wake_ups": unacked}


def _wake_up_chain(raw: bytes | str) -> str:
    """Name the chain and member of an unacknowledged run_slice message."""
    try:
        message = json.loads(raw)[0]
        args = json.loads(base64.b64decode(message["body"]))[0]
        turn = args[0]
        return f"{turn['chain']} -> {turn['member'] or 'shared queue'}"
    except (ValueError, KeyError, IndexError, TypeError):
        return "(not a run_slice message)"
