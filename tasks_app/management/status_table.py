"""Draw the scheduler's status (selectors_status.py) as two terminal tables.

rich lays the tables out to the terminal's width and drops colour when the
output is not a terminal; JSON output needs none of this.
"""

import io
import json
from dataclasses import asdict
from datetime import datetime

from django.core.serializers.json import DjangoJSONEncoder
from rich.console import Console, Group
from rich.table import Table

from tasks_app.selectors_status import LaneStatus, MemberStatus, SchedulerStatus

MINUTE_S = 60
HOUR_S = 3600
MEMBER_COLUMNS = ("member", "host", "lane now", "slices", "messages", "heartbeat")
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
NUMERIC = frozenset({"slices", "messages", "partition", "lag", "resume at"})


def status_json(status: SchedulerStatus) -> str:
    """Return the status as one line of JSON (ISO 8601 times)."""
    return json.dumps(asdict(status), cls=DjangoJSONEncoder)


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


def _member_row(member: MemberStatus, now: datetime) -> list[str]:
    heartbeat = _ago(member.last_heartbeat, now) if member.last_heartbeat else "gone"
    return [
        member.name,
        member.hostname,
        member.lane or "-",
        str(member.slices),
        str(member.messages),
        heartbeat,
    ]


def _lane_row(lane: LaneStatus, now: datetime) -> list[str]:
    last = "-"
    if lane.last_slice is not None:
        s = lane.last_slice
        last = (
            f"{_ago(s.ended_at, now)} by {s.member}: {s.messages} messages, "
            f"{s.end_reason}"
        )
    return [
        lane.group,
        lane.topic,
        str(lane.partition),
        "paused" if lane.paused else "",
        str(lane.lag),
        str(lane.next_offset),
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
