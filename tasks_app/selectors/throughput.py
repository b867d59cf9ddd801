"""Reads over the task rows of a recent window: finished tasks per time bucket
with submit-to-finish latency percentiles, and the tasks that died.

Both are bounded by `finished_at` through the BRIN index `task_finished_brin`
(a B-tree there would make every status update non-HOT; see the Task model),
so they read the pages of the window's tasks, not the table.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import connection

from tasks_app.models import Task, TaskStatus
from tasks_app.selectors.rotation import Window

# Buckets per window: a point every second over a minute, every 15 s over 15.
BUCKETS_PER_WINDOW = 60
# Percentiles of latency per bucket.
LATENCY_PERCENTILES = (0.5, 0.95, 0.99)
# The dead tasks listed (newest first); older ones are in the admin.
DEAD_TASKS_SHOWN = 20
# The end of a dead task's error shown: a traceback ends with the exception.
ERROR_CHARS = 300

# Latency runs from submission, or from `run_at` for a task scheduled later.
_THROUGHPUT_SQL = """
SELECT date_bin(%(bucket)s, finished_at, %(origin)s) AS bucket,
       count(*) FILTER (WHERE status = 'succeeded'),
       count(*) FILTER (WHERE status = 'dead'),
       percentile_cont(%(percentiles)s::float8[]) WITHIN GROUP (
           ORDER BY extract(epoch FROM
               finished_at - greatest(created_at, coalesce(run_at, created_at))))
  FROM tasks_app_task
 WHERE finished_at >= %(start)s AND finished_at < %(end)s
   AND status IN ('succeeded', 'dead')
 GROUP BY 1
"""


@dataclass(frozen=True)
class ThroughputBucket:
    """Tasks that finished in one time bucket and how long they took."""

    start: datetime
    succeeded: int
    dead: int
    latency_s: dict[float, float] | None  # percentile -> seconds; None: no task


def bucket_seconds(window: Window) -> int:
    """Return the bucket width that splits a window into about 60 points."""
    return max(1, round(window.seconds / BUCKETS_PER_WINDOW))


def throughput_series(*, window: Window) -> list[ThroughputBucket]:
    """Return every bucket of the window, oldest first, empty ones as zeros.

    Buckets are aligned to multiples of their width since the epoch, so a
    bucket keeps its edges from one poll to the next.
    """
    width = timedelta(seconds=bucket_seconds(window))
    epoch = datetime.fromtimestamp(0, tz=window.start.tzinfo)
    first = epoch + (window.start - epoch) // width * width
    params: dict[str, Any] = {
        "bucket": width,
        "origin": epoch,
        "percentiles": list(LATENCY_PERCENTILES),
        "start": first,
        "end": window.end,
    }
    with connection.cursor() as cursor:
        cursor.execute(_THROUGHPUT_SQL, params)
        found = {row[0]: row[1:] for row in cursor}
    buckets = []
    start = first
    while start < window.end:
        succeeded, dead, latencies = found.get(start, (0, 0, None))
        latency = latencies and dict(zip(LATENCY_PERCENTILES, latencies, strict=True))
        buckets.append(ThroughputBucket(start, succeeded, dead, latency))
        start += width
    return buckets


@dataclass(frozen=True)
class DeadTask:
    """A task that died in the window, which an operator may retry."""

    uuid: UUID
    topic: str
    attempts: int
    finished_at: datetime
    error: str


def dead_tasks_recent(
    *, window: Window, limit: int = DEAD_TASKS_SHOWN
) -> list[DeadTask]:
    """List the tasks still dead that died in the window, newest first."""
    rows = (
        Task.objects.filter(status=TaskStatus.DEAD, finished_at__gte=window.start)
        .order_by("-finished_at")
        .values_list("uuid", "topic__name", "attempts", "finished_at", "error")[:limit]
    )
    return [
        DeadTask(uuid, topic, attempts, finished_at, error[-ERROR_CHARS:])
        for uuid, topic, attempts, finished_at, error in rows
        if finished_at is not None  # always set on a dead task; narrows the type
    ]
