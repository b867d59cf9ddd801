"""Reads for watching the rotation over a window of recent minutes: who worked on
which lane and how much, each lane's holder and last slice, the slices.

Every slice query is bounded by the window through the `slice_ended_at` index;
the live parts (members, holders) come from Redis through rotation/'s classes.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, DurationField, F, Max, Min, Q, Sum, Value
from django.db.models.functions import Greatest, Least
from django.utils import timezone

from rotation.lanes import Lane
from rotation.lease import LeaseManager
from rotation.store import EndReason
from tasks_app.models import Slice
from tasks_app.redis_client import redis_client
from tasks_app.selectors import LaneStats, lane_stats, members_reader, redis_read

# The windows an operator can pick, in seconds: 1, 5 and 15 minutes.
WINDOW_CHOICES_S = (60, 300, 900)
# The timeline draws at most this many slices (the newest): enough for 15
# minutes of 2 s slices on 30 busy lanes, few enough for a browser to redraw
# every poll. The answer says when older slices were left out.
TIMELINE_MAX_SLICES = 2000


@dataclass(frozen=True)
class Window:
    """The time span a view covers, ending now."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def window_ending_now(seconds: int) -> Window:
    """Return the window of the last `seconds`."""
    end = timezone.now()
    return Window(start=end - timedelta(seconds=seconds), end=end)


@dataclass(frozen=True)
class LaneActivity:
    """What one member did on one lane within a window."""

    lane: Lane
    member: str
    slices: int
    messages: int
    busy_s: float  # slice time inside the window
    deadline_slices: int  # slices the deadline ended: the lane still had work
    first_start: datetime  # of its first slice, or the window's start
    last_end: datetime


def slice_activity(*, window: Window) -> list[LaneActivity]:
    """Sum the window's slices per (lane, member) in one GROUP BY."""
    inside = Least(F("ended_at"), Value(window.end)) - Greatest(
        F("started_at"), Value(window.start)
    )
    rows = (
        Slice.objects.filter(ended_at__gte=window.start)
        .order_by()
        .values("group__group_id", "topic__name", "partition", "member")
        .annotate(
            slices=Count("id"),
            messages=Sum("messages"),
            busy=Sum(inside, output_field=DurationField()),
            deadline=Count("id", filter=Q(end_reason=EndReason.DEADLINE)),
            first=Min(Greatest(F("started_at"), Value(window.start))),
            last=Max("ended_at"),
        )
    )
    return [
        LaneActivity(
            lane=Lane(row["group__group_id"], row["topic__name"], row["partition"]),
            member=row["member"],
            slices=row["slices"],
            messages=row["messages"] or 0,
            busy_s=max(row["busy"].total_seconds(), 0.0),
            deadline_slices=row["deadline"],
            first_start=row["first"],
            last_end=row["last"],
        )
        for row in rows
    ]


@dataclass(frozen=True)
class MemberView:
    """A member: live ones from their heartbeats, gone ones from their slices."""

    name: str
    live: bool
    hostname: str
    lane: str
    last_heartbeat: float | None
    slices: int
    messages: int
    busy_s: float


def members_with_activity(*, activity: list[LaneActivity]) -> list[MemberView]:
    """List live members and the members that worked in the window, by name."""
    live = {
        info.name: info
        for info in redis_read(members_reader().describe, what="members")
    }
    names = sorted(set(live) | {item.member for item in activity})
    views = []
    for name in names:
        mine = [item for item in activity if item.member == name]
        info = live.get(name)
        views.append(
            MemberView(
                name=name,
                live=info is not None,
                hostname=info.hostname if info else "",
                lane=info.lane if info else "",
                last_heartbeat=info.last_heartbeat if info else None,
                slices=sum(item.slices for item in mine),
                messages=sum(item.messages for item in mine),
                busy_s=sum(item.busy_s for item in mine),
            )
        )
    return views


@dataclass(frozen=True)
class LastSlice:
    """The newest slice recorded on a lane."""

    member: str
    ended_at: datetime
    end_reason: str
    messages: int


@dataclass(frozen=True)
class LaneView:
    """A lane as operators see it: where it stands and who worked on it last."""

    stats: LaneStats
    last_slice: LastSlice | None

    @property
    def lane(self) -> Lane:
        return Lane(self.stats.group, self.stats.topic, self.stats.partition)


# The newest slice of each lane, one index probe per lane (slice_lane_id).
_LAST_SLICES_SQL = """
SELECT l.topic, l.partition, s.member, s.ended_at, s.end_reason, s.messages
  FROM unnest(%s::text[], %s::int[]) AS l(topic, partition)
  JOIN tasks_app_topic t ON t.name = l.topic
 CROSS JOIN LATERAL (
       SELECT member, ended_at, end_reason, messages
         FROM tasks_app_slice
        WHERE topic_id = t.id AND partition = l.partition
        ORDER BY id DESC
        LIMIT 1) s
"""


def lanes_overview() -> list[LaneView]:
    """List every lane with its lag, resume point and newest slice (4 queries)."""
    lanes = lane_stats()
    with connection.cursor() as cursor:
        cursor.execute(
            _LAST_SLICES_SQL,
            [[lane.topic for lane in lanes], [lane.partition for lane in lanes]],
        )
        last = {
            (topic, partition): LastSlice(member, ended_at, reason, messages)
            for topic, partition, member, ended_at, reason, messages in cursor
        }
    return [LaneView(lane, last.get((lane.topic, lane.partition))) for lane in lanes]


def lane_holders(*, lanes: list[Lane]) -> dict[Lane, str]:
    """Map each held lane to the member holding its lease now (one GET a lane)."""
    leases = LeaseManager(redis_client())

    def read() -> dict[Lane, str]:
        values = {lane: leases.holder(lane) for lane in lanes}
        return {lane: _member_of(value) for lane, value in values.items() if value}

    return redis_read(read, what="lease holders")


def _member_of(lease_value: str) -> str:
    """Take the member out of a lease's `token:member:nonce` value."""
    _token, _, owner = lease_value.partition(":")
    return owner.rpartition(":")[0] or owner


@dataclass(frozen=True)
class SliceBar:
    """One slice on the timeline."""

    lane: Lane
    member: str
    started_at: datetime
    ended_at: datetime
    messages: int
    end_reason: str
    first_offset: int | None
    last_offset: int | None


def timeline_slices(
    *, window: Window, limit: int = TIMELINE_MAX_SLICES
) -> tuple[list[SliceBar], bool]:
    """Return the window's newest `limit` slices oldest first, and whether older
    ones in the window were left out."""
    rows = list(
        Slice.objects.filter(ended_at__gte=window.start)
        .order_by("-ended_at")
        .values_list(
            "group__group_id",
            "topic__name",
            "partition",
            "member",
            "started_at",
            "ended_at",
            "messages",
            "end_reason",
            "first_offset",
            "last_offset",
        )[: limit + 1]
    )
    newest = rows[:limit]
    bars = [
        SliceBar(Lane(group, topic, part), member, start, end, count, why, first, last)
        for group, topic, part, member, start, end, count, why, first, last in newest
    ]
    return bars[::-1], len(rows) > limit
