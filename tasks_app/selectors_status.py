"""The scheduler at a glance, for `manage.py scheduler_status`: members with their
recent work, and lanes with lag, holder and newest slice.

Built on the reads behind /api/members/ (`member_list`) and /api/stats/
(`lane_stats`), adding what a shell view needs: each member's slices over a
recent window, who holds each lane now, and each lane's newest slice.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Count, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from rotation.lanes import Lane
from rotation.members import MemberInfo
from tasks_app.models import LaneState, Slice
from tasks_app.selectors import LaneStats, lane_stats, member_list

LaneNames = tuple[str, str, int]  # (group_id, topic name, partition)


@dataclass(frozen=True)
class MemberStatus:
    """A member: live ones from their heartbeats, gone ones from recent slices."""

    name: str
    live: bool
    hostname: str
    lane: str  # group/topic/partition it works on now; "" between slices
    last_heartbeat: datetime | None
    slices: int  # in the window
    messages: int  # in the window


@dataclass(frozen=True)
class LastSlice:
    """The newest slice recorded on a lane."""

    member: str
    ended_at: datetime
    end_reason: str
    messages: int


@dataclass(frozen=True)
class LaneStatus:
    """A lane as /api/stats/ shows it, with its holder now and its newest slice."""

    group: str
    topic: str
    partition: int
    paused: bool
    lag: int
    next_offset: int  # the resume point
    end_offset: int
    holder: str  # the member in a slice on it now, or ""
    last_slice: LastSlice | None


@dataclass(frozen=True)
class SchedulerStatus:
    """Members and lanes as read at `taken_at`; activity over the last `window_s`."""

    taken_at: datetime
    window_s: int
    members: list[MemberStatus]
    lanes: list[LaneStatus]


def scheduler_status(*, window_s: int) -> SchedulerStatus:
    """Read members and lanes: one Redis read and six queries, whatever the size.

    A member's `lane` is where it announces its slices (rotation/slice.py sets
    it once it holds the lease and clears it after), so it names each lane's
    holder without reading every lease.
    """
    taken_at = timezone.now()
    live = member_list()
    holders = {member.lane: member.name for member in live if member.lane}
    activity = _activity_by_member(since=taken_at - timedelta(seconds=window_s))
    members = _members(live, activity)
    last = _last_slices()
    lanes = [
        _lane_status(
            stats, holders, last.get((stats.group, stats.topic, stats.partition))
        )
        for stats in lane_stats()
    ]
    return SchedulerStatus(taken_at, window_s, members, lanes)


def _members(
    live: list[MemberInfo], activity: dict[str, tuple[int, int]]
) -> list[MemberStatus]:
    """List the live members, then those gone since their slices in the window."""
    members = [
        MemberStatus(
            member.name,
            True,
            member.hostname,
            member.lane,
            datetime.fromtimestamp(member.last_heartbeat, tz=UTC),
            *activity.get(member.name, (0, 0)),
        )
        for member in live
    ]
    gone = sorted(set(activity) - {member.name for member in live})
    return members + [
        MemberStatus(name, False, "", "", None, *activity[name]) for name in gone
    ]


def _lane_status(
    stats: LaneStats, holders: dict[str, str], last: LastSlice | None
) -> LaneStatus:
    """Join one lane's stats with its holder and newest slice."""
    name = str(Lane(stats.group, stats.topic, stats.partition))
    return LaneStatus(
        group=stats.group,
        topic=stats.topic,
        partition=stats.partition,
        paused=stats.paused,
        lag=stats.lag,
        next_offset=stats.next_offset,
        end_offset=stats.end_offset,
        holder=holders.get(name, ""),
        last_slice=last,
    )


def _activity_by_member(*, since: datetime) -> dict[str, tuple[int, int]]:
    """Map each member that ended a slice since `since` to (slices, messages)."""
    rows = (
        Slice.objects.filter(ended_at__gte=since)
        .order_by()
        .values("member")
        .annotate(slices=Count("id"), messages=Coalesce(Sum("messages"), 0))
    )
    return {row["member"]: (row["slices"], row["messages"]) for row in rows}


def _last_slices() -> dict[LaneNames, LastSlice]:
    """Map each lane that ever ran to its newest slice, in one query.

    A lane with slices has a LaneState row (its first slice claimed it); the
    newest slice of each is one probe of the (topic, partition, id) index.
    """
    newest = Slice.objects.filter(
        group_id=OuterRef("group_id"),
        topic_id=OuterRef("topic_id"),
        partition=OuterRef("partition"),
    ).order_by("-id")
    ids = LaneState.objects.annotate(newest=Subquery(newest.values("id")[:1]))
    rows = Slice.objects.filter(id__in=ids.values("newest")).values_list(
        "group__group_id",
        "topic__name",
        "partition",
        "member",
        "ended_at",
        "end_reason",
        "messages",
    )
    return {
        (group, topic, partition): LastSlice(member, ended_at, reason, messages)
        for group, topic, partition, member, ended_at, reason, messages in rows
    }
