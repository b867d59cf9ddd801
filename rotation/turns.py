"""Turns: who runs a lane next, queued promptly when a slice ends.

A chain is the sequence of turns of one lane (parallel walk) or of one group
(sequential walk). Each queued turn gets a fresh id stored under the chain's
key; a turn whose id is no longer the stored one is stale and does nothing, so
a chain never runs twice at once however often it is re-queued.
"""

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from rotation.lanes import KEY_PREFIX, Lane, text
from rotation.members import IDLE_KEY, MEMBERS_KEY, Members

# Take the longest-idle live member that is not excluded, and reserve it.
_PICK_IDLE = """
local cutoff = tonumber(ARGV[1])
local excluded = {}
for i = 2, #ARGV do excluded[ARGV[i]] = true end
for _, name in ipairs(redis.call('zrange', KEYS[1], 0, -1)) do
  if not excluded[name] then
    local beat = redis.call('zscore', KEYS[2], name)
    if beat and tonumber(beat) >= cutoff then
      redis.call('zrem', KEYS[1], name)
      return name
    end
  end
end
return false
"""
# Replace the queued turn by a short-lived "running" marker, so the chain is
# never seen idle between a turn's start and its lease, or its lease's release
# and the next turn.
_START = """
local raw = redis.call('get', KEYS[1])
if not raw then return 0 end
local turn = cjson.decode(raw)
if turn['id'] ~= ARGV[1] or turn['running'] then return 0 end
turn['running'] = true
redis.call('set', KEYS[1], cjson.encode(turn), 'px', ARGV[2])
return 1
"""
_FINISH = """
local raw = redis.call('get', KEYS[1])
if raw and cjson.decode(raw)['id'] == ARGV[1] then redis.call('del', KEYS[1]) end
return 1
"""
_REFRESH = """
local raw = redis.call('get', KEYS[1])
if raw and cjson.decode(raw)['id'] == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
end
return 1
"""
# The marker covers two short gaps (start -> lease, release -> next turn) and is
# refreshed before the second; a member dying inside one delays its chain by at
# most this long, well inside "one lease TTL plus one watchdog tick".
RUNNING_MARKER_MS = 1000


@dataclass(frozen=True)
class Turn:
    """One queued turn: the chain it belongs to, its id, its lane and target."""

    chain: str
    id: str
    lane: Lane
    member: str  # "" when any member may take it
    queued_at: float
    running: bool = False

    def to_message(self) -> dict:
        """Serialise to primitives for a Celery message."""
        return {
            "chain": self.chain,
            "id": self.id,
            "lane": self.lane.as_args(),
            "member": self.member,
            "queued_at": self.queued_at,
            "running": self.running,
        }

    @classmethod
    def from_message(cls, data: dict) -> "Turn":
        group, topic, partition = data["lane"]
        return cls(
            data["chain"],
            data["id"],
            Lane(group, topic, int(partition)),
            data["member"],
            float(data["queued_at"]),
            bool(data.get("running", False)),
        )


SendTurn = Callable[[Turn, float], None]
"""Deliver a turn: to `turn.member`'s own queue, or the shared one; after a delay."""


def chain_key(chain: str) -> str:
    """Name the Redis key holding a chain's queued turn."""
    return f"{KEY_PREFIX}:turn:{chain}"


class Turns:
    """Queue, start and inspect turns."""

    def __init__(
        self,
        client: redis.Redis,
        members: Members,
        send: SendTurn,
        clock: Callable[[], float] = time.time,
    ):
        self.client = client
        self.members = members
        self.send = send
        self.clock = clock
        self._pick = client.register_script(_PICK_IDLE)
        self._start = client.register_script(_START)
        self._finish = client.register_script(_FINISH)
        self._refresh = client.register_script(_REFRESH)

    def enqueue(
        self,
        chain: str,
        lane: Lane,
        *,
        exclude: Sequence[str] = (),
        delay_s: float = 0.0,
    ) -> Turn:
        """Queue the chain's next turn, to an idle member not excluded if any."""
        cutoff = self.clock() - self.members.expiry_s
        picked = self._pick(keys=[IDLE_KEY, MEMBERS_KEY], args=[cutoff, *exclude])
        member = text(picked) if picked else ""
        turn = Turn(chain, uuid.uuid4().hex, lane, member, self.clock())
        self.client.set(chain_key(chain), json.dumps(turn.to_message()))
        self.send(turn, delay_s)
        return turn

    def start(self, turn: Turn) -> bool:
        """Mark the turn running; False when a newer turn replaced it (do nothing)."""
        return bool(
            self._start(keys=[chain_key(turn.chain)], args=[turn.id, RUNNING_MARKER_MS])
        )

    def refresh(self, turn: Turn) -> None:
        """Extend the running marker before the lease is given up."""
        self._refresh(keys=[chain_key(turn.chain)], args=[turn.id, RUNNING_MARKER_MS])

    def finish(self, turn: Turn) -> None:
        """Clear the running marker, unless the next turn has replaced it."""
        self._finish(keys=[chain_key(turn.chain)], args=[turn.id])

    def queued(self, chain: str) -> Turn | None:
        """Return the chain's queued (or running) turn, if there is one."""
        raw = self.client.get(chain_key(chain))
        return Turn.from_message(json.loads(raw)) if raw else None

    def is_stuck(self, turn: Turn, *, max_wait_s: float) -> bool:
        """A queued turn sent to a member that died, or waiting far too long, is
        stuck; a running one never is (its marker expires by itself)."""
        if turn.running:
            return False
        if turn.member and not self.members.is_live(turn.member):
            return True
        return self.clock() - turn.queued_at > max_wait_s
