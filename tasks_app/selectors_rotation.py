"""Reads for watching the rotation over a window of recent minutes: who worked on
which lane and how much, each lane's holder and last slice, and fair shares.

Every slice query is bounded by the window through the `slice_ended_at` index;
the live parts (members, holders) come from Redis through rotation/'s classes.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, DurationField, F, Q, Sum, Value
from django.db.models.functions import Greatest, Least
from django.utils import timezone

from rotation.lanes import Lane
from rotation.lease import LeaseManager
from rotation.members import Members
from rotation.scheduler import EndReason
from tasks_app.fairness import jain_index, weighted_fill
from tasks_app.models import Slice, Topic
from tasks_app.redis_client import redis_client
from tasks_app.selectors import LaneStats, lane_stats, redis_read

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
    members = Members(redis_client(), heartbeat_s=settings.SCHEDULER_HEARTBEAT_S)
    live = {info.name: info for info in redis_read(members.describe, what="members")}
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
    bars = [
        SliceBar(Lane(group, topic, partition), *rest)
        for group, topic, partition, *rest in rows[:limit]
    ]
    return bars[::-1], len(rows) > limit


@dataclass(frozen=True)
class Share:
    """One topic's or member's part of the window's slice time."""

    name: str
    busy_s: float
    share: float  # of all slice time in the window
    fair_share: float  # what the weights entitle it to, see tasks_app.fairness
    weight: int


@dataclass(frozen=True)
class Fairness:
    """Who got how much slice time, against the weights, and Jain's index over
    the backlogged lanes (lanes) and over the members (members)."""

    topics: list[Share]
    members: list[Share]
    lanes_index: float | None
    members_index: float | None


def fair_shares(
    *, window: Window, activity: list[LaneActivity], members: list[str]
) -> Fairness:
    """Compare each topic's and member's slice time with its fair share.

    A lane is backlogged when a deadline ended one of its slices (it still had
    work), so it could have used the whole window; other lanes wanted only what
    they got. The slice time handed out is shared by weighted water-filling over
    those demands. Members, all of weight 1, each deserve an equal part.
    """
    busy: dict[Lane, float] = defaultdict(float)
    for item in activity:
        busy[item.lane] += item.busy_s
    backlogged = {item.lane for item in activity if item.deadline_slices}
    weights = dict(
        Topic.objects.filter(name__in={lane.topic for lane in busy}).values_list(
            "name", "weight"
        )
    )
    demands = {
        lane: window.seconds if lane in backlogged else spent
        for lane, spent in busy.items()
    }
    lane_weights = {lane: weights.get(lane.topic, 1) for lane in busy}
    fair = weighted_fill(sum(busy.values()), demands, lane_weights)
    member_shares = _member_shares(activity, members)
    return Fairness(
        topics=_topic_shares(busy, fair, weights),
        members=member_shares,
        lanes_index=jain_index(
            busy[lane] / fair[lane] for lane in backlogged if fair[lane] > 0
        ),
        members_index=jain_index(share.busy_s for share in member_shares),
    )


def _topic_shares(
    busy: dict[Lane, float], fair: dict[Lane, float], weights: dict[str, int]
) -> list[Share]:
    """Add the lanes' slice time and fair share up per topic."""
    spent: dict[str, float] = defaultdict(float)
    deserved: dict[str, float] = defaultdict(float)
    for lane, seconds in busy.items():
        spent[lane.topic] += seconds
        deserved[lane.topic] += fair[lane]
    total = sum(spent.values()) or 1.0
    return [
        Share(
            name=topic,
            busy_s=spent[topic],
            share=spent[topic] / total,
            fair_share=deserved[topic] / total,
            weight=weights.get(topic, 1),
        )
        for topic in sorted(spent)
    ]


def _member_shares(activity: list[LaneActivity], members: list[str]) -> list[Share]:
    """Give each member (live, or busy in the window) its part of the slice time."""
    busy = dict.fromkeys(sorted(set(members) | {i.member for i in activity}), 0.0)
    for item in activity:
        busy[item.member] += item.busy_s
    total = sum(busy.values()) or 1.0
    return [
        Share(name, spent, spent / total, fair_share=1 / len(busy), weight=1)
        for name, spent in busy.items()
    ]
