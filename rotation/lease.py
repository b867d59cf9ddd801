"""Fenced per-lane leases in Redis, after redis-py's `redis/lock.py`.

Acquire is SET NX PX plus a fencing token from a per-lane counter; renew and
release act only while the stored value still carries the holder's token.
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
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
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
        token = self._call(
            lane, self._acquire, [lane.key("lease"), lane.key("token")], [nonce, ttl_ms]
        )
        return None if token is None else Lease(lane, int(token), nonce, ttl_ms)

    def renew(self, lease: Lease) -> bool:
        """Extend the lease by its TTL; False means it was lost (expired or taken)."""
        return bool(
            self._call(
                lease.lane,
                self._renew,
                [lease.lane.key("lease")],
                [lease.value, lease.ttl_ms],
            )
        )

    def release(self, lease: Lease) -> bool:
        """Give the lease up at once, if it is still ours."""
        return bool(
            self._call(
                lease.lane, self._release, [lease.lane.key("lease")], [lease.value]
            )
        )

    def holder(self, lane: Lane) -> str | None:
        """Return the stored `token:owner` of the lane's holder, if any."""
        value = self.client.get(lane.key("lease"))
        return text(value) if value else None

    def raise_token_floor(self, lane: Lane, floor: int) -> None:
        """Make the next token exceed `floor` (after Redis lost its counters)."""
        self._call(lane, self._raise_floor, [lane.key("token")], [floor])

    @staticmethod
    def _call(lane: Lane, script: Callable, keys: list, args: list) -> Any:
        try:
            return script(keys=keys, args=args)
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
