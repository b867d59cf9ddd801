"""Figures for bench/rotation.py from recorded tasks and slices (plain data, no I/O).

Times are epoch seconds. A lane is (topic, partition); a member is a worker.
"""

import bisect
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tasks_app.fairness import jain_index


@dataclass(frozen=True)
class TaskRow:
    """What the benchmark needs of one finished task."""

    topic: str
    id: int
    partition: int
    offset: int
    created: float
    published: float
    started: float
    finished: float
    succeeded: bool


@dataclass(frozen=True)
class SliceRow:
    """What the benchmark needs of one recorded slice."""

    topic: str
    partition: int
    member: str
    started: float
    ended: float
    messages: int
    first_offset: int | None
    end_reason: str


@dataclass(frozen=True)
class Handoff:
    """One lane passing from a slice to the next slice that ran messages.

    `gap_s` runs from the previous slice's end to the first handler's start;
    `delay_s` from the moment both the lane and the taking member were free
    (so it leaves out waiting for a member busy on another lane). `gap_s`
    splits at the next slice's recorded start: `to_lease_s` before it (the
    wake-up, the turn, the policy, the lease), the rest after it (the fenced
    claim, the first fetch, the first tasks loaded). `idle_s` runs from the
    end of the lane's last handler before the next slice to that slice's first
    handler: what the lane itself waited, whatever a slice records as its end.
    """

    gap_s: float
    delay_s: float
    previous_end_reason: str
    to_lease_s: float = math.nan
    idle_s: float = math.nan


def percentile(values: Iterable[float], pct: float) -> float:
    """Return the nearest-rank percentile (`pct` in 0..100) of `values`."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def jain(values: Iterable[float]) -> float:
    """Jain's fairness index (the dashboard's), NaN when nothing is compared."""
    index = jain_index(values)
    return math.nan if index is None else index


def order_held(tasks: Iterable[TaskRow]) -> bool:
    """Tell whether, per topic, every task succeeded and each one started only
    after the task submitted before it had finished."""
    by_topic: dict[str, list[TaskRow]] = defaultdict(list)
    for task in tasks:
        by_topic[task.topic].append(task)
    for rows in by_topic.values():
        rows.sort(key=lambda t: t.id)
        if not all(t.succeeded for t in rows):
            return False
        if any(b.started < a.finished for a, b in itertools.pairwise(rows)):
            return False
    return True


def _grouped(
    slices: Iterable[SliceRow], key: Callable[[SliceRow], object]
) -> dict[object, list[SliceRow]]:
    groups: dict[object, list[SliceRow]] = defaultdict(list)
    for s in slices:
        groups[key(s)].append(s)
    for rows in groups.values():
        rows.sort(key=lambda s: s.started)
    return groups


def handoffs(slices: list[SliceRow], tasks: Iterable[TaskRow]) -> list[Handoff]:
    """Measure every hand-off of a lane to a slice that ran messages."""
    tasks = list(tasks)
    first_start = {(t.topic, t.partition, t.offset): t.started for t in tasks}
    finishes: dict[tuple[str, int], list[float]] = defaultdict(list)
    for t in tasks:
        finishes[t.topic, t.partition].append(t.finished)
    for ends in finishes.values():
        ends.sort()
    member_free: dict[int, float] = {}
    for rows in _grouped(slices, lambda s: s.member).values():
        for before, after in itertools.pairwise(rows):
            member_free[id(after)] = before.ended
    result = []
    for rows in _grouped(slices, lambda s: (s.topic, s.partition)).values():
        for before, after in itertools.pairwise(rows):
            if not after.messages or after.first_offset is None:
                continue
            began = first_start[after.topic, after.partition, after.first_offset]
            free = max(before.ended, member_free.get(id(after), before.ended))
            ends = finishes[after.topic, after.partition]
            earlier = bisect.bisect_right(ends, began)
            last_end = ends[earlier - 1] if earlier else math.nan
            result.append(
                Handoff(
                    began - before.ended,
                    began - free,
                    before.end_reason,
                    after.started - before.ended,
                    began - last_end,
                )
            )
    return result


def backlogged_window(tasks: Iterable[TaskRow], since: float) -> tuple[float, float]:
    """Return (start, end) of the span after `since` in which every topic had
    published work: until the first topic's last task finished."""
    first_published: dict[str, float] = {}
    last_finished: dict[str, float] = {}
    for t in tasks:
        first = first_published.get(t.topic, t.published)
        first_published[t.topic] = min(t.published, first)
        last_finished[t.topic] = max(t.finished, last_finished.get(t.topic, 0.0))
    start = max(since, *first_published.values())
    return start, min(last_finished.values())


def busy_shares(
    slices: Iterable[SliceRow],
    window: tuple[float, float],
    key: Callable[[SliceRow], str],
    names: Iterable[str],
) -> dict[str, float]:
    """Return each name's share of the slice time spent inside `window`
    (a name without slices there gets 0)."""
    start, end = window
    busy = dict.fromkeys(names, 0.0)
    for s in slices:
        inside = max(0.0, min(s.ended, end) - max(s.started, start))
        busy[key(s)] = busy.get(key(s), 0.0) + inside
    total = sum(busy.values())
    return {name: seconds / total for name, seconds in busy.items()} if total else {}


def per_interval(
    finished: Iterable[float], start: float, interval_s: float
) -> list[int]:
    """Count the finishes in each `interval_s` from `start` (the last interval
    may be partial; none is left out, even an empty one in between)."""
    counts: list[int] = []
    for at in finished:
        bucket = max(0, int((at - start) // interval_s))
        counts.extend([0] * (bucket + 1 - len(counts)))
        counts[bucket] += 1
    return counts


def shares(costs: dict[str, float]) -> dict[str, float]:
    """Each process's share of the processes' summed cost (0-1)."""
    total = sum(costs.values())
    return {name: cost / total for name, cost in costs.items()}


def largest_share_shift(
    first: dict[str, float], last: dict[str, float]
) -> tuple[str, float]:
    """Name the process whose share of the CPU (its cost over all processes')
    changed the most from `first` to `last`, and by how many percentage
    points (positive: it took a larger share).

    On a shared machine every process's cost moves with the machine's speed;
    the shares do not, unless one process's own cost grows.
    """
    before, after = shares(first), shares(last)
    shifts = {name: 100 * (after[name] - before[name]) for name in before}
    name = max(shifts, key=lambda n: abs(shifts[n]))
    return name, shifts[name]


def first_last_rates(finished: list[float], share: float = 0.1) -> tuple[float, float]:
    """Return the rates (tasks/s) of the first and the last `share` of tasks by
    finish order, each over the span from its own first finish to its own last
    (so the start-up before the first finish counts in neither).

    `finished` is sorted. NaN when there are too few tasks or no time passed.
    """
    count = int(len(finished) * share)
    if count < 2:
        return math.nan, math.nan

    def rate(span: list[float]) -> float:
        seconds = span[-1] - span[0]
        return (len(span) - 1) / seconds if seconds > 0 else math.nan

    return rate(finished[:count]), rate(finished[-count:])


def rss_drift(
    samples: Iterable[tuple[float, int]], warm_at: float
) -> tuple[int, float]:
    """Return (the RSS after warm-up, the largest deviation from it in %) of one
    process's (time, bytes) samples: the warm-up value is the first sample at or
    after `warm_at`, the deviation is measured over that one and every later one.
    (0, NaN) when no sample is that late."""
    after = [rss for at, rss in sorted(samples) if at >= warm_at]
    if not after:
        return 0, math.nan
    warm = after[0]
    return warm, max(abs(rss - warm) for rss in after) / warm * 100
