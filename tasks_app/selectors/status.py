"""The scheduler at a glance, for `manage.py scheduler_status`: the dashboard's
members and lanes (selectors/rotation.py), with each lane's holder now.

A lane's holder is the member whose Redis lease on it is live: the lease is
what the fence honours, so it is the truth, as on the dashboard. A member's own
`lane` is only what it announces (set once it holds the lease, cleared after
its slice), so the two can differ for a moment around a hand-off.
"""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from tasks_app.selectors.rotation import (
    LaneView,
    MemberView,
    lane_holders,
    lanes_overview,
    members_with_activity,
    slice_activity,
    window_ending_now,
)


@dataclass(frozen=True)
class LaneStatus:
    """A lane as the dashboard shows it, with the member holding it now ("": none)."""

    view: LaneView
    holder: str


@dataclass(frozen=True)
class SchedulerStatus:
    """Members and lanes as read by `taken_at`, when the last read was done:
    no heartbeat read can be newer. Activity is over the `window_s` before the
    reads began."""

    taken_at: datetime
    window_s: int
    members: list[MemberView]
    lanes: list[LaneStatus]


def scheduler_status(*, window_s: int) -> SchedulerStatus:
    """Read members, lanes and holders: the dashboard's queries, one Redis read
    for the members and one GET per lane for the leases."""
    window = window_ending_now(window_s)
    members = members_with_activity(activity=slice_activity(window=window))
    views = lanes_overview()
    holders = lane_holders(lanes=[view.lane for view in views])
    lanes = [LaneStatus(view, holders.get(view.lane, "")) for view in views]
    return SchedulerStatus(timezone.now(), window_s, members, lanes)
