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
    console.print(f"Scheduler status at {taken}")
    console.print(Group(_members_table(status), _lanes_table(status)))
    return buffer.getvalue()


def _members_table(status: SchedulerStatus) -> Table:
    minutes = f"{status.window_s / MINUTE_S:g} min"
    table = Table(title=f"Members (work over the last {minutes})", title_justify="left")
    for column in ("member", "host", "lane now", "slices", "messages", "heartbeat"):
        table.add_column(column, justify="right" if column in NUMERIC else "left")
    for member in status.members:
        table.add_row(*_member_row(member, status.taken_at))
    if not status.members:
        table.add_row("(no live members: start a worker)", *[""] * 5)
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


def _lanes_table(status: SchedulerStatus) -> Table:
    table = Table(title="Lanes", title_justify="left")
    columns = ("group", "topic", "partition", "paused", "lag", "resume at", "holder")
    for column in (*columns, "last slice"):
        table.add_column(column, justify="right" if column in NUMERIC else "left")
    for lane in status.lanes:
        table.add_row(*_lane_row(lane, status.taken_at))
    if not status.lanes:
        table.add_row("(no topics yet)", *[""] * 7)
    return table


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
