"""Draw the scheduler's status (selectors/status.py) as two terminal tables, or
as JSON.

rich lays the tables out to the terminal's width and drops colour when the
output is not a terminal. JSON keeps each lane flat, as /api/stats/ does.
"""

import io
import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from rich.console import Console, Group
from rich.table import Table

from tasks_app.selectors.rotation import MemberView
from tasks_app.selectors.status import LaneStatus, SchedulerStatus

MINUTE_S = 60
HOUR_S = 3600
MEMBER_COLUMNS = (
    "member",
    "host",
    "lane now",
    "slices",
    "messages",
    "busy",
    "heartbeat",
)
LANE_COLUMNS = (
    "group",
    "topic",
    "partition",
    "paused",
    "lag",
    "resume at",
    "holder",
    "last slice",
)
NUMERIC = frozenset({"slices", "messages", "busy", "partition", "lag", "resume at"})


def status_json(status: SchedulerStatus) -> str:
    """Return the status as one line of JSON (ISO 8601 times)."""
    data = {
        "taken_at": status.taken_at,
        "window_s": status.window_s,
        "members": [_member_json(member) for member in status.members],
        "lanes": [_lane_json(lane) for lane in status.lanes],
    }
    return json.dumps(data, cls=DjangoJSONEncoder)


def _member_json(member: MemberView) -> dict[str, Any]:
    return {**asdict(member), "last_heartbeat": _heartbeat_at(member)}


def _lane_json(lane: LaneStatus) -> dict[str, Any]:
    """Flatten a lane: its stats and lag, its holder, its newest slice."""
    stats, last = lane.view.stats, lane.view.last_slice
    return {
        **asdict(stats),
        "lag": stats.lag,
        "holder": lane.holder,
        "last_slice": None if last is None else asdict(last),
    }


def status_text(status: SchedulerStatus, *, width: int, color: bool) -> str:
    """Return the members and lanes tables drawn `width` columns wide."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=color,
        no_color=not color,
        highlight=False,
    )
    taken = status.taken_at.strftime("%Y-%m-%d %H:%M:%S %Z")
    minutes = f"{status.window_s / MINUTE_S:g} min"
    members = _table(
        f"Members (work over the last {minutes})",
        MEMBER_COLUMNS,
        [_member_row(member, status.taken_at) for member in status.members],
        empty="(no live members: start a worker)",
    )
    lanes = _table(
        "Lanes",
        LANE_COLUMNS,
        [_lane_row(lane, status.taken_at) for lane in status.lanes],
        empty="(no topics yet)",
    )
    console.print(f"Scheduler status at {taken}")
    console.print(Group(members, lanes))
    return buffer.getvalue()


def _table(
    title: str, columns: tuple[str, ...], rows: list[list[str]], *, empty: str
) -> Table:
    """Lay out one table, numbers to the right; a lone row says why it is empty."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in NUMERIC else "left")
    for row in rows or [[empty] + [""] * (len(columns) - 1)]:
        table.add_row(*row)
    return table


def _heartbeat_at(member: MemberView) -> datetime | None:
    """Return when a live member last beat; None for a member that is gone."""
    if member.last_heartbeat is None:
        return None
    return datetime.fromtimestamp(member.last_heartbeat, tz=UTC)


def _member_row(member: MemberView, now: datetime) -> list[str]:
    beat = _heartbeat_at(member)
    return [
        member.name,
        member.hostname,
        member.lane or "-",
        str(member.slices),
        str(member.messages),
        f"{member.busy_s:.1f} s",
        "gone" if beat is None else _ago(beat, now),
    ]


def _lane_row(lane: LaneStatus, now: datetime) -> list[str]:
    stats, newest = lane.view.stats, lane.view.last_slice
    last = "-"
    if newest is not None:
        last = (
            f"{_ago(newest.ended_at, now)} by {newest.member}: "
            f"{newest.messages} messages, {newest.end_reason}"
        )
    return [
        stats.group,
        stats.topic,
        str(stats.partition),
        "paused" if stats.paused else "",
        str(stats.lag),
        str(stats.next_offset),
        lane.holder or "-",
        last,
    ]


def _ago(when: datetime, now: datetime) -> str:
    """Say how long before `now` something happened, in the unit that reads best."""
    seconds = max((now - when).total_seconds(), 0.0)
    if seconds < MINUTE_S:
        return f"{seconds:.1f} s ago"
    if seconds < HOUR_S:
        return f"{seconds / MINUTE_S:.0f} min ago"
    return f"{seconds / HOUR_S:.1f} h ago"
