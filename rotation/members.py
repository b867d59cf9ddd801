"""Members: live consumer processes announcing themselves with heartbeats."""

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import redis

from rotation.lanes import KEY_PREFIX, text

logger = logging.getLogger(__name__)

MEMBERS_KEY = f"{KEY_PREFIX}:members"  # zset member -> last heartbeat (epoch s)
IDLE_KEY = f"{KEY_PREFIX}:idle"  # zset member -> when it became idle (epoch s)
INFO_PREFIX = f"{KEY_PREFIX}:member:"


@dataclass(frozen=True)
class MemberInfo:
    """What the API shows about a member."""

    name: str
    hostname: str
    pid: int
    lane: str
    last_heartbeat: float


class Members:
    """Record heartbeats and list the members that are still alive."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        heartbeat_s: float,
        clock: Callable[[], float] = time.time,
    ):
        self.client = client
        self.heartbeat_s = heartbeat_s
        self.clock = clock

    @property
    def expiry_s(self) -> float:
        """A member silent for three heartbeats is gone."""
        return self.heartbeat_s * 3

    def beat(
        self, name: str, *, hostname: str, pid: int, lane: str | None = None
    ) -> None:
        """Announce that `name` is alive, optionally with the lane it works on."""
        now = self.clock()
        info = {"hostname": hostname, "pid": pid, "last_heartbeat": now}
        if lane is not None:
            info["lane"] = lane
        pipe = self.client.pipeline()
        pipe.zadd(MEMBERS_KEY, {name: now})
        pipe.hset(
            INFO_PREFIX + name, mapping={k: json.dumps(v) for k, v in info.items()}
        )
        pipe.expire(INFO_PREFIX + name, int(self.expiry_s) + 1)
        pipe.execute()

    def set_lane(self, name: str, lane: str) -> None:
        """Record the lane a member works on now ("" when between slices)."""
        self.client.hset(INFO_PREFIX + name, "lane", json.dumps(lane))

    def live(self) -> list[str]:
        """Return the names of members that beat recently, dropping the dead ones."""
        cutoff = self.clock() - self.expiry_s
        pipe = self.client.pipeline()
        pipe.zremrangebyscore(MEMBERS_KEY, "-inf", cutoff)
        pipe.zremrangebyscore(IDLE_KEY, "-inf", cutoff - 3600)
        pipe.zrangebyscore(MEMBERS_KEY, cutoff, "+inf")
        names = pipe.execute()[-1]
        return sorted(text(n) for n in names)

    def is_live(self, name: str) -> bool:
        """Tell whether `name` beat within the expiry."""
        score = self.client.zscore(MEMBERS_KEY, name)
        return score is not None and score >= self.clock() - self.expiry_s

    def any_idle(self) -> bool:
        """Tell whether some live member is waiting for a turn right now."""
        idle = [text(name) for name in cast(list, self.client.zrange(IDLE_KEY, 0, -1))]
        if not idle:
            return False
        cutoff = self.clock() - self.expiry_s
        beats = self.client.zmscore(MEMBERS_KEY, idle)
        return any(beat is not None and beat >= cutoff for beat in beats)

    def describe(self) -> list[MemberInfo]:
        """Return what is known about each live member."""
        result = []
        for name in self.live():
            raw = self.client.hgetall(INFO_PREFIX + name)
            info = {text(k): json.loads(v) for k, v in raw.items()}
            result.append(
                MemberInfo(
                    name=name,
                    hostname=info.get("hostname", ""),
                    pid=info.get("pid", 0),
                    lane=info.get("lane", ""),
                    last_heartbeat=info.get("last_heartbeat", 0.0),
                )
            )
        return result

    def leave(self, name: str) -> None:
        """Remove a member that is shutting down."""
        pipe = self.client.pipeline()
        pipe.zrem(MEMBERS_KEY, name)
        pipe.zrem(IDLE_KEY, name)
        pipe.delete(INFO_PREFIX + name)
        pipe.execute()

    def mark_idle(self, name: str) -> None:
        """Offer this member for the next turn that wants a different member."""
        self.client.zadd(IDLE_KEY, {name: self.clock()})


class Heartbeat:
    """Beat for one member from a daemon thread until stopped."""

    def __init__(self, members: Members, name: str, *, hostname: str, pid: int):
        self.members = members
        self.name = name
        self.hostname = hostname
        self.pid = pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self.members.beat(self.name, hostname=self.hostname, pid=self.pid, lane="")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.members.heartbeat_s * 2)

    def _run(self) -> None:
        while not self._stop.wait(self.members.heartbeat_s):
            try:
                self.members.beat(self.name, hostname=self.hostname, pid=self.pid)
            except redis.RedisError as exc:
                logger.warning("Heartbeat of %s to Redis failed: %s", self.name, exc)
