"""Turn what a run recorded into its figures: lost, out of order, duplicates,
dead, recovery, stalls.

Inputs are the tasks the API accepted (with the time it answered), the runs the
handler recorded (tests/handlers.py) and the tasks' final rows. Times are
epoch seconds from one machine's clock.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.chaos.scenarios import FaultWindow
from tests.chaos.workload import Accepted

TERMINAL = frozenset({"succeeded", "dead", "cancelled"})
NEVER = math.inf
SAMPLES_KEPT = 5


@dataclass
class TaskRuns:
    """Every recorded start and end of one task."""

    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)

    @property
    def first_start(self) -> float | None:
        return min(self.starts) if self.starts else None

    @property
    def first_end(self) -> float:
        """When the task first finished; NEVER if no run of it ended."""
        return min(self.ends) if self.ends else NEVER


@dataclass(frozen=True)
class FinalRow:
    """A task's row at the end of the run."""

    status: str
    finished_at: float | None
    attempts: int


@dataclass
class Figures:
    """The measured outcome of one run (see docs/reliability.md for definitions)."""

    accepted: int
    lost: int
    dead: int
    out_of_order: int
    duplicates: int
    overlapping_runs: int
    resume_s: float | None
    drain_s: float | None
    max_stall_s: float
    stall_topic: str
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Stall:
    """The longest a lane had a task waiting: how long, on which topic, and
    from when until when (epoch s; `end` NEVER if the task never finished)."""

    seconds: float = 0.0
    topic: str = ""
    start: float = 0.0
    end: float = 0.0


def runs_by_task(entries: Iterable[dict]) -> dict[str, TaskRuns]:
    """Group recorded entries by task id."""
    runs: dict[str, TaskRuns] = defaultdict(TaskRuns)
    for entry in entries:
        target = runs[entry["task"]]
        (target.starts if entry["phase"] == "start" else target.ends).append(entry["t"])
    return runs


def figures(
    accepted: dict[int, Accepted],
    entries: dict[str, list[dict]],
    rows: dict[str, FinalRow],
    window: FaultWindow,
) -> Figures:
    """Compute every figure of a run; `entries` are the recorder's, by topic."""
    runs = runs_by_task(e for topic_entries in entries.values() for e in topic_entries)
    lanes = _lanes(accepted)
    stall = _max_stall(lanes, runs)
    lost = [a for a in accepted.values() if _status(rows, a) not in TERMINAL]
    disorder = [p for lane in lanes.values() for p in _disorder(lane, runs, rows)]
    starts = [len(runs[a.task_id].starts) for a in accepted.values()]
    return Figures(
        accepted=len(accepted),
        lost=len(lost),
        dead=sum(1 for a in accepted.values() if _status(rows, a) == "dead"),
        out_of_order=len(disorder),
        duplicates=sum(max(0, n - 1) for n in starts),
        overlapping_runs=sum(map(_overlaps, entries.values())),
        resume_s=_resume(lanes, runs, entries, window),
        drain_s=_drain(accepted, runs, window),
        max_stall_s=stall.seconds,
        stall_topic=stall.topic,
        details={
            "lost_by_topic": _lost_by_topic(lost, rows),
            "out_of_order_samples": disorder[:SAMPLES_KEPT],
            "stall_window": [stall.start, stall.end],
        },
    )


def _status(rows: dict[str, FinalRow], task: Accepted) -> str:
    row = rows.get(task.task_id)
    return row.status if row else "missing"


def _lanes(accepted: dict[int, Accepted]) -> dict[str, list[Accepted]]:
    """Each topic's accepted tasks in submission order (one key: one lane)."""
    lanes: dict[str, list[Accepted]] = defaultdict(list)
    for n in sorted(accepted):
        lanes[accepted[n].topic].append(accepted[n])
    return lanes


def _disorder(
    lane: list[Accepted], runs: dict[str, TaskRuns], rows: dict[str, FinalRow]
) -> list[str]:
    """Name each neighbouring pair (a, b) in submission order where b first
    started before a first ended, or b's recorded finish precedes a's."""
    found = []
    for a, b in itertools.pairwise(lane):
        b_start = runs[b.task_id].first_start
        if b_start is not None and b_start < runs[a.task_id].first_end:
            found.append(f"task {b.n} started before task {a.n} ended")
            continue
        if _finished_at(rows, b) < _finished_at(rows, a):
            found.append(f"task {b.n} recorded finished before task {a.n}")
    return found


def _finished_at(rows: dict[str, FinalRow], task: Accepted) -> float:
    """When the task's row says it finished; NEVER when it has not."""
    row = rows.get(task.task_id)
    return row.finished_at if row and row.finished_at else NEVER


def _overlaps(entries: list[dict]) -> int:
    """Count runs that started while another run of the same lane was unfinished
    (a run whose end was never recorded, e.g. killed, counts as instant)."""
    intervals = sorted(_intervals(entries))
    count, latest_end = 0, -NEVER
    for start, end in intervals:
        if start < latest_end:
            count += 1
        latest_end = max(latest_end, end)
    return count


def _intervals(entries: list[dict]) -> list[tuple[float, float]]:
    """Pair each start with the next end of the same task in the same process."""
    open_runs: dict[tuple[str, int], float] = {}
    intervals = []
    for entry in sorted(entries, key=lambda e: e["t"]):
        key = (entry["task"], entry["pid"])
        if entry["phase"] == "start":
            if key in open_runs:
                intervals.append((open_runs[key], open_runs[key]))
            open_runs[key] = entry["t"]
        elif key in open_runs:
            intervals.append((open_runs.pop(key), entry["t"]))
    intervals += [(start, start) for start in open_runs.values()]
    return intervals


def _resume(
    lanes: dict[str, list[Accepted]],
    runs: dict[str, TaskRuns],
    entries: dict[str, list[dict]],
    window: FaultWindow,
) -> float | None:
    """Seconds from the fault's end until every lane that had work then had
    finished a handler run again; None when no lane had work at the fault's end."""
    waits = []
    for topic, lane in lanes.items():
        pending = any(
            a.at <= window.end and runs[a.task_id].first_end > window.end for a in lane
        )
        if not pending:
            continue
        ends = [e["t"] for e in entries.get(topic, []) if e["phase"] == "end"]
        later = [t for t in ends if t > window.end]
        waits.append(min(later) - window.end if later else NEVER)
    return max(waits) if waits else None


def _drain(
    accepted: dict[int, Accepted], runs: dict[str, TaskRuns], window: FaultWindow
) -> float | None:
    """Seconds from the fault's end until every task accepted by then had finished."""
    ends = [runs[a.task_id].first_end for a in accepted.values() if a.at <= window.end]
    if not ends:
        return None
    return max(0.0, max(ends) - window.end)


def _max_stall(lanes: dict[str, list[Accepted]], runs: dict[str, TaskRuns]) -> Stall:
    """The longest a lane had a task waiting (accepted, its predecessor done)
    without finishing it."""
    worst = Stall()
    for topic, lane in lanes.items():
        previous_end = 0.0
        for task in lane:
            end = runs[task.task_id].first_end
            waiting_since = max(previous_end, task.at)
            if end - waiting_since > worst.seconds:
                worst = Stall(end - waiting_since, topic, waiting_since, end)
            previous_end = max(previous_end, end)
            if previous_end == NEVER:
                break
    return worst


def _lost_by_topic(lost: list[Accepted], rows: dict[str, FinalRow]) -> dict:
    """Per topic: how many were lost, their statuses and the first one's number."""
    found: dict[str, dict] = {}
    for task in sorted(lost, key=lambda t: t.n):
        entry = found.setdefault(
            task.topic, {"count": 0, "first_n": task.n, "statuses": Counter()}
        )
        entry["count"] += 1
        entry["statuses"][_status(rows, task)] += 1
    return {topic: {**e, "statuses": dict(e["statuses"])} for topic, e in found.items()}
