"""Turns: which chain runs next, decided by weighted virtual time.

A chain is the sequence of turns of one lane (parallel walk) or of one group
(sequential walk). A chain with work waits in a ready set scored by its virtual
time: the processing time it has had divided by its weight. Queueing a turn
also sends a wake-up message (to an idle member other than the last one, if
any); the member that takes a wake-up claims the ready chain with the lowest
virtual time. That is start-time fair queueing: while they have a backlog,
chains get processing time in proportion to their weights, whatever their
backlogs and however many members there are. A claimed chain's key holds a
short "running" marker, so a chain never runs twice at once.
"""

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import redis

from rotation.lanes import KEY_PREFIX, Lane, text
from rotation.members import IDLE_KEY, MEMBERS_KEY, Members

READY_KEY = f"{KEY_PREFIX}:ready"  # zset chain -> virtual time
PASS_KEY = f"{KEY_PREFIX}:pass"  # hash chain -> virtual time after its last slice
VTIME_KEY = f"{KEY_PREFIX}:vtime"  # virtual time of the latest claimed chain
TURN_PREFIX = f"{KEY_PREFIX}:turn:"
LEASE_PREFIX = f"{KEY_PREFIX}:lease:"  # as Lane.key("lease") spells it

# Queue a turn in one call, as a hand-off waits for it: take the longest-idle
# live member that is not excluded (reserving it), store the turn naming it, and
# make the chain ready. A chain that was idle starts at the current virtual
# time, so it cannot bank credit while it had nothing to do. Answer the member.
_ENQUEUE = """
local cutoff = tonumber(ARGV[3])
local excluded = {}
for i = 4, #ARGV do excluded[ARGV[i]] = true end
local picked = false
for _, name in ipairs(redis.call('zrange', KEYS[5], 0, -1)) do
  if not excluded[name] then
    local beat = redis.call('zscore', KEYS[6], name)
    if beat and tonumber(beat) >= cutoff then
      redis.call('zrem', KEYS[5], name)
      picked = name
      break
    end
  end
end
local turn = cjson.decode(ARGV[1])
turn['member'] = picked or ''
redis.call('set', KEYS[1], cjson.encode(turn))
local own = tonumber(redis.call('hget', KEYS[3], ARGV[2]) or '0')
local now = tonumber(redis.call('get', KEYS[4]) or '0')
redis.call('zadd', KEYS[2], math.max(own, now), ARGV[2])
return picked
"""
# Claim the ready chain with the lowest virtual time, preferring one this member
# did not run last, and before both, one whose lane is free: a turn queued early
# waits for its holder's release, while this member could run another lane at
# once. Mark it running for ARGV[3] ms. The member leaves the idle set first: it
# is busy from now on. With nothing due yet, answer when the earliest delayed
# chain will be due, so the wake-up can come back then. ARGV[5] starts a lane's
# lease key (Lane.key("lease") without the lane).
_CLAIM = """
redis.call('zrem', KEYS[4], ARGV[1])
local choice = nil
local fallback = nil
local held = nil
local next_due = nil
for _, chain in ipairs(redis.call('zrange', KEYS[1], 0, -1)) do
  local raw = redis.call('get', ARGV[4] .. chain)
  if not raw then
    redis.call('zrem', KEYS[1], chain)
  else
    local turn = cjson.decode(raw)
    local due = tonumber(turn['not_before'])
    if not turn['running'] and due <= tonumber(ARGV[2]) then
      local lane = turn['lane']
      local lease = ARGV[5] .. lane[1] .. ':' .. lane[2] .. ':' .. tostring(lane[3])
      if turn['after_release'] and redis.call('exists', lease) == 1 then
        held = held or chain
      elseif turn['last_member'] ~= ARGV[1] then
        choice = chain
        break
      else
        fallback = fallback or chain
      end
    elseif not turn['running'] then
      next_due = math.min(next_due or due, due)
    end
  end
end
choice = choice or fallback or held
if not choice then return next_due and tostring(next_due) or false end
local key = ARGV[4] .. choice
local turn = cjson.decode(redis.call('get', key))
local vtime = redis.call('zscore', KEYS[1], choice)
redis.call('zrem', KEYS[1], choice)
redis.call('set', KEYS[2], vtime)
redis.call('hset', KEYS[3], choice, vtime)
turn['running'] = true
redis.call('set', key, cjson.encode(turn), 'px', ARGV[3])
return cjson.encode(turn)
"""
# Charge a chain. If its next turn is already ready (queued before the slice
# ended), its score must include the charge too, as the claim takes the chain's
# virtual time from it: the score becomes the larger of the two, as if the turn
# had been queued after the charge (a chain behind stays at the virtual time).
_CHARGE = """
local pass = tonumber(redis.call('hincrbyfloat', KEYS[1], ARGV[1], ARGV[2]))
local score = redis.call('zscore', KEYS[2], ARGV[1])
if score and tonumber(score) < pass then
  redis.call('zadd', KEYS[2], pass, ARGV[1])
end
return 1
"""
_REFRESH = """
local raw = redis.call('get', KEYS[1])
if raw and cjson.decode(raw)['id'] == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
end
return 1
"""
_FINISH = """
local raw = redis.call('get', KEYS[1])
if raw and cjson.decode(raw)['id'] == ARGV[1] then redis.call('del', KEYS[1]) end
return 1
"""
# The running marker covers two short gaps (claim -> lease, and release -> next
# turn; it is refreshed before the second). A member dying inside one delays its
# chain by at most this long, well inside "one lease TTL plus one watchdog tick".
RUNNING_MARKER_MS = 1000


@dataclass(frozen=True)
class Turn:
    """One turn of a chain: its lane, who it was sent to, who ran the last one."""

    chain: str
    id: str
    lane: Lane
    member: str  # the member the wake-up went to; "" for the shared queue
    queued_at: float
    last_member: str = ""
    not_before: float = 0.0
    running: bool = False
    # Where the lane's last slice stopped, -1 if unknown: the next holder starts
    # fetching there while it takes the lease; its fenced claim decides.
    resume_from: int = -1
    # Queued before the last slice ended: wait for its holder's release.
    after_release: bool = False

    def __str__(self) -> str:
        resume = f" from offset {self.resume_from}" if self.resume_from >= 0 else ""
        return f"turn {self.id} on {self.lane}{resume}"

    def to_message(self) -> dict:
        """Serialise to primitives for Redis and Celery messages."""
        data = asdict(self)
        data["lane"] = self.lane.as_args()
        return data

    @classmethod
    def from_message(cls, data: dict) -> "Turn":
        group, topic, partition = data["lane"]
        return cls(**{**data, "lane": Lane(group, topic, int(partition))})


SendTurn = Callable[[Turn, float], None]
"""Deliver a wake-up: to `turn.member`'s own queue, or the shared one; delayed."""


def chain_key(chain: str) -> str:
    """Name the Redis key holding a chain's queued or running turn."""
    return TURN_PREFIX + chain


class Turns:
    """Queue, claim and inspect turns."""

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
        self._enqueue = client.register_script(_ENQUEUE)
        self._claim = client.register_script(_CLAIM)
        self._charge = client.register_script(_CHARGE)
        self._refresh = client.register_script(_REFRESH)
        self._finish = client.register_script(_FINISH)

    def enqueue(
        self,
        chain: str,
        lane: Lane,
        *,
        exclude: Sequence[str] = (),
        last_member: str = "",
        delay_s: float = 0.0,
        resume_from: int = -1,
        after_release: bool = False,
    ) -> Turn:
        """Make the chain ready and wake an idle member not excluded, if any."""
        now = self.clock()
        turn = Turn(
            chain=chain,
            id=uuid.uuid4().hex,
            lane=lane,
            member="",
            queued_at=now,
            last_member=last_member,
            not_before=now + delay_s,
            resume_from=resume_from,
            after_release=after_release,
        )
        picked = self._enqueue(
            keys=[
                chain_key(chain), READY_KEY, PASS_KEY, VTIME_KEY, IDLE_KEY, MEMBERS_KEY,
            ],
            args=[
                json.dumps(turn.to_message()), chain, now - self.members.expiry_s,
                *exclude,
            ],
        )  # fmt: skip
        if picked:
            turn = replace(turn, member=text(picked))
        self.send(turn, delay_s)
        return turn

    def claim(self, wake: Turn, member: str) -> Turn | None:
        """Take the ready chain with the lowest virtual time for `member`, which
        leaves the idle set in the same call, claimed or not.

        None means nothing is due: the wake-up was spare (another member took
        the chain), or only delayed chains wait, and the wake-up is sent again
        for when the first of them is due.
        """
        raw = self._claim(
            keys=[READY_KEY, VTIME_KEY, PASS_KEY, IDLE_KEY],
            args=[member, self.clock(), RUNNING_MARKER_MS, TURN_PREFIX, LEASE_PREFIX],
        )
        if raw is None:
            return None
        reply = text(raw)
        if reply.startswith("{"):
            return Turn.from_message(json.loads(reply))
        self.send(wake, max(0.0, float(reply) - self.clock()))
        return None

    def charge(self, chain: str, *, seconds: float, weight: int) -> None:
        """Advance the chain's virtual time by the processing time it just had."""
        self._charge(keys=[PASS_KEY, READY_KEY], args=[chain, seconds / max(weight, 1)])

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

    def is_stuck(self, turn: Turn, *, after_s: float) -> bool:
        """Tell whether a queued turn's wake-up was lost.

        It was when the member it went to is gone, or when the turn has been due
        for `after_s` while some member sat idle: an idle member takes a wake-up
        within milliseconds, and a restarted worker keeps its name, so "gone"
        alone misses a wake-up lost with a worker that came back. A running turn
        is never stuck (its marker expires by itself).
        """
        if turn.running:
            return False
        if turn.member and not self.members.is_live(turn.member):
            return True
        overdue_s = self.clock() - max(turn.queued_at, turn.not_before)
        return overdue_s > after_s and self.members.any_idle()
