"""The dashboard's JSON: each panel from its selector, as plain values.

Times are epoch seconds (what the page's JavaScript computes with). A panel
whose service is down (Redis: members, lease holders) is reported under
`errors` and the other panels still answer, so losing Redis never blanks the
view of PostgreSQL's truth.
"""

from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

from rotation.lanes import Lane
from tasks_app.errors import ServiceUnavailable
from tasks_app.selectors.fairness import fair_shares
from tasks_app.selectors.rotation import (
    LaneView,
    SliceBar,
    lane_holders,
    lanes_overview,
    members_with_activity,
    slice_activity,
    timeline_slices,
    window_ending_now,
)
from tasks_app.selectors.throughput import (
    DeadTask,
    ThroughputBucket,
    bucket_seconds,
    dead_tasks_recent,
    throughput_series,
)

T = TypeVar("T")


def dashboard_data(*, window_s: int) -> dict[str, Any]:
    """Read every panel over the last `window_s` seconds."""
    window = window_ending_now(window_s)
    errors: dict[str, str] = {}
    activity = slice_activity(window=window)
    members = _unless_down(
        lambda: members_with_activity(activity=activity), "members", errors
    )
    lanes = lanes_overview()
    holders = _unless_down(
        lambda: lane_holders(lanes=[view.lane for view in lanes]), "holders", errors
    )
    bars, truncated = timeline_slices(window=window)
    live = [member.name for member in members or [] if member.live]
    return {
        "now": window.end.timestamp(),
        "window_s": window_s,
        "bucket_s": bucket_seconds(window),
        "members": None if members is None else [asdict(m) for m in members],
        "lanes": [_lane(view, holders) for view in lanes],
        "timeline": {"slices": [_bar(bar) for bar in bars], "truncated": truncated},
        "throughput": [_bucket(b) for b in throughput_series(window=window)],
        "fairness": asdict(fair_shares(activity=activity, members=live)),
        "dead_tasks": [_dead(task) for task in dead_tasks_recent(window=window)],
        "errors": errors,
    }


def _unless_down(read: Callable[[], T], panel: str, errors: dict[str, str]) -> T | None:
    """Run a read; when its service is down, note why under `panel` instead."""
    try:
        return read()
    except ServiceUnavailable as exc:
        errors[panel] = exc.message
        return None


def _lane(view: LaneView, holders: dict[Lane, str] | None) -> dict[str, Any]:
    """Describe a lane; `holder` is None when unknown (Redis down), "" when free."""
    stats, last = view.stats, view.last_slice
    return {
        "lane": str(view.lane),
        "group": stats.group,
        "topic": stats.topic,
        "partition": stats.partition,
        "paused": stats.paused,
        "lag": stats.lag,
        "next_offset": stats.next_offset,
        "end_offset": stats.end_offset,
        "holder": None if holders is None else holders.get(view.lane, ""),
        "last_slice": last
        and {
            "member": last.member,
            "ended_at": last.ended_at.timestamp(),
            "end_reason": last.end_reason,
            "messages": last.messages,
        },
    }


def _bar(bar: SliceBar) -> dict[str, Any]:
    return {
        "lane": str(bar.lane),
        "member": bar.member,
        "start": bar.started_at.timestamp(),
        "end": bar.ended_at.timestamp(),
        "messages": bar.messages,
        "end_reason": bar.end_reason,
        "first_offset": bar.first_offset,
        "last_offset": bar.last_offset,
    }


def _bucket(bucket: ThroughputBucket) -> dict[str, Any]:
    """Name each latency percentile as it is spoken: 0.95 is "p95"."""
    return {
        "start": bucket.start.timestamp(),
        "succeeded": bucket.succeeded,
        "dead": bucket.dead,
        "latency_s": {
            f"p{round(p * 100)}": seconds
            for p, seconds in (bucket.latency_s or {}).items()
        },
    }


def _dead(task: DeadTask) -> dict[str, Any]:
    finished = task.finished_at.timestamp()
    return {**asdict(task), "uuid": str(task.uuid), "finished_at": finished}
