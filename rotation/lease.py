"""Fenced per-lane leases in Redis, after redis-py's `redis/lock.py`.

Acquire is SET NX PX plus a fencing token from a per-lane counter; renew and
release act only while the stored value still carries the holder's token.
A release rings the lane's bell: the member woken for the lane's next turn
before the slice ended waits on it (BLPOP), so it takes the lease the moment
the holder lets go, and learns where the holder's reading stopped.
"""

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from rotation.errors import RotationError
from rotation.lanes import Lane, text

logger = logging.getLogger(__name__)

_ACQUIRE = """
if redis.call('exists', KEYS[1]) == 1 then return false end
local token = redis.call('incr', KEYS[2])
redis.call('set', KEYS[1], token .. ':' .. ARGV[1], 'px', ARGV[2])
return token
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
# Release, and ring the bell with where the lane's reading stopped: one entry,
# kept briefly, as only a member already waiting (or about to) needs it.
_RELEASE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('del', KEYS[1], KEYS[2])
redis.call('rpush', KEYS[2], ARGV[2])
redis.call('pexpire', KEYS[2], ARGV[3])
return 1
"""
# How long a bell nobody answered stays: a waiter between a failed acquire and
# its BLPOP answers it within milliseconds.
BELL_MS = 1000
# A waiter tries the lease again at least this often: a holder that died never
# rings, and its lease expires silently.
WAIT_STEP_S = 0.05
_RAISE_FLOOR = """
local current = tonumber(redis.call('get', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then redis.call('set', KEYS[1], ARGV[1]) end
return 1
"""


class LeaseError(RotationError):
    """Redis could not be reached while acting on a lease."""


@dataclass(frozen=True)
class Lease:
    """A held lease: the lane, the fencing token and the value stored in Redis."""

    lane: Lane
    token: int
    owner: str
    ttl_ms: int

    @property
    def value(self) -> str:
        return f"{self.token}:{self.owner}"


class LeaseManager:
    """Acquire, renew and release lane leases on one Redis connection."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._raise_floor = client.register_script(_RAISE_FLOOR)

    def acquire(self, lane: Lane, *, owner: str, ttl_ms: int) -> Lease | None:
        """Take the lane's lease with a new fencing token, or None if it is held."""
        nonce = f"{owner}:{secrets.token_hex(4)}"
        keys = [lane.key("lease"), lane.key("token")]
        token = self._call(lane, self._acquire, keys=keys, args=[nonce, ttl_ms])
        return None if token is None else Lease(lane, int(token), nonce, ttl_ms)

    def renew(self, lease: Lease) -> bool:
        """Extend the lease by its TTL; False means it was lost (expired or taken)."""
        return bool(
            self._call(
                lease.lane,
                self._renew,
                keys=[lease.lane.key("lease")],
                args=[lease.value, lease.ttl_ms],
            )
        )

    def release(self, lease: Lease, *, resume_from: int = -1) -> bool:
        """Give the lease up at once, if it is still ours, and ring the lane's
        bell with the offset its next holder reads from (-1: unknown)."""
        lane = lease.lane
        keys = [lane.key("lease"), lane.key("bell")]
        return bool(
            self._call(
                lane, self._release, keys=keys, args=[lease.value, resume_from, BELL_MS]
            )
        )

    def acquire_on_release(
        self,
        lane: Lane,
        *,
        owner: str,
        ttl_ms: int,
        wait_s: float,
        stop: threading.Event,
    ) -> tuple[Lease | None, int]:
        """Take the lane's lease, waiting up to `wait_s` for its holder to let
        go; return it (None if still held, or once `stop` is set: a worker
        shutting down takes no new slice) and the offset the release rang with
        (-1 if none)."""
        deadline = time.monotonic() + wait_s
        resume_from = -1
        while not stop.is_set():
            lease = self.acquire(lane, owner=owner, ttl_ms=ttl_ms)
            left_s = deadline - time.monotonic()
            if lease is not None or left_s <= 0:
                return lease, resume_from
            bell = [lane.key("bell")]
            rung = self._call(lane, self.client.blpop, bell, min(left_s, WAIT_STEP_S))
            if rung:
                resume_from = int(rung[1])
        return None, resume_from

    def holder(self, lane: Lane) -> str | None:
        """Return the stored `token:owner` of the lane's holder, if any."""
        value = self.client.get(lane.key("lease"))
        return text(value) if value else None

    def raise_token_floor(self, lane: Lane, floor: int) -> None:
        """Make the next token exceed `floor` (after Redis lost its counters)."""
        self._call(lane, self._raise_floor, keys=[lane.key("token")], args=[floor])

    @staticmethod
    def _call(lane: Lane, command: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run a Redis command or script for the lane, naming Redis if it fails."""
        try:
            return command(*args, **kwargs)
        except redis.RedisError as exc:
            raise LeaseError(
                f"Redis unreachable for the lease of lane {lane}: {exc}"
            ) from exc


class LeaseKeeper:
    """Renew a lease from a background thread while handlers run.

    A frozen or dead process stops renewing, so its lease expires and the lane
    moves on; `lost` tells the living holder that it must stop at once.
    """

    def __init__(
        self,
        manager: LeaseManager,
        lease: Lease,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.manager = manager
        self.lease = lease
        self.clock = clock
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-{lease.lane}", daemon=True
        )

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval_s = self.lease.ttl_ms / 3000
        last_ok = self.clock()
        while not self._stop.wait(interval_s):
            try:
                if self.manager.renew(self.lease):
                    last_ok = self.clock()
                    continue
                logger.warning(
                    "Lease on lane %s lost (token %d)",
                    self.lease.lane,
                    self.lease.token,
                )
            except LeaseError as exc:
                if (self.clock() - last_ok) * 1000 < self.lease.ttl_ms:
                    logger.warning("%s; retrying", exc)
                    continue
                logger.error("%s; treating the lease as lost", exc)
            self.lost.set()
            return
