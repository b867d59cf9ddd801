"""Fair shares over a window: each topic's and member's part of the slice time
against what the weights entitle it to, and Jain's index (tasks_app.fairness)."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from rotation.lanes import Lane
from tasks_app.fairness import jain_index, weighted_fill
from tasks_app.models import Topic
from tasks_app.selectors.rotation import LaneActivity


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


def fair_shares(*, activity: list[LaneActivity], members: list[str]) -> Fairness:
    """Compare each topic's and member's slice time with its fair share.

    The members that took turns could have worked all through the span in
    which slices ran: that is the time to share. A lane is backlogged when a
    deadline ended one of its slices (it still had work); it could have used
    all of its own span, one holder at a time. Other lanes wanted only what
    they got. Weighted water-filling over those demands gives each lane its
    fair share; members, all of weight 1, each deserve an equal part.
    """
    busy, demands, capacity = _lane_demands(activity)
    backlogged = {item.lane for item in activity if item.deadline_slices}
    weights = dict(
        Topic.objects.filter(name__in={lane.topic for lane in busy}).values_list(
            "name", "weight"
        )
    )
    lane_weights = {lane: weights.get(lane.topic, 1) for lane in busy}
    fair = weighted_fill(capacity, demands, lane_weights)
    member_shares = _member_shares(activity, members)
    return Fairness(
        topics=_topic_shares(busy, fair, weights),
        members=member_shares,
        lanes_index=jain_index(
            busy[lane] / fair[lane] for lane in backlogged if fair[lane] > 0
        ),
        members_index=jain_index(share.busy_s for share in member_shares),
    )


def _lane_demands(
    activity: list[LaneActivity],
) -> tuple[dict[Lane, float], dict[Lane, float], float]:
    """Return each lane's slice time, what it could have used, and the members'
    time to share (members who took turns x the span in which slices ran)."""
    busy: dict[Lane, float] = defaultdict(float)
    spans: dict[Lane, tuple[datetime, datetime]] = {}
    for item in activity:
        busy[item.lane] += item.busy_s
        start, end = spans.get(item.lane, (item.first_start, item.last_end))
        spans[item.lane] = (min(start, item.first_start), max(end, item.last_end))
    backlogged = {item.lane for item in activity if item.deadline_slices}
    demands = {
        lane: (end - start).total_seconds() if lane in backlogged else busy[lane]
        for lane, (start, end) in spans.items()
    }
    if not spans:
        return busy, demands, 0.0
    start = min(first for first, _ in spans.values())
    end = max(last for _, last in spans.values())
    members = len({item.member for item in activity})
    return busy, demands, members * (end - start).total_seconds()


def _topic_shares(
    busy: dict[Lane, float], fair: dict[Lane, float], weights: dict[str, int]
) -> list[Share]:
    """Add the lanes' slice time and fair share up per topic."""
    spent: dict[str, float] = defaultdict(float)
    deserved: dict[str, float] = defaultdict(float)
    for lane, seconds in busy.items():
        spent[lane.topic] += seconds
        deserved[lane.topic] += fair[lane]
    total, due = sum(spent.values()) or 1.0, sum(deserved.values()) or 1.0
    return [
        Share(
            name=topic,
            busy_s=spent[topic],
            share=spent[topic] / total,
            fair_share=deserved[topic] / due,
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
