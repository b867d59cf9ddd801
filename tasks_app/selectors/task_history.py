"""Totals over the task history for /metrics: transitions by (topic, status),
and the publish latency of each publication, read incrementally.

The history (TaskEvent) only grows, by several rows per task, so reading all
of it each scrape would cost seconds on a few million tasks (bench/metrics.py).
Instead each web process folds the settled part once and keeps its totals:
rows older than SETTLED_AFTER_S by their time are settled, and so is every row
with a smaller id, because no transaction that could still add one is open
that long (PostgreSQL ends a worker's idle transaction after the lease grace,
a few seconds; the publisher's and the API's last milliseconds). Each scrape
then adds the settled rows that appeared since and reads only the unsettled
tail, the last few minutes.
"""

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from tasks_app.selectors.metrics import Histogram, bound_params, bucket_index_sql
from tasks_app.services.sql import sql

# Publishing waits for a beat tick at worst (1 s by default); a run_at task is
# measured from its run_at.
PUBLISH_LATENCY_BOUNDS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Far longer than any transaction here lasts, short enough that the unsettled
# tail each scrape reads stays small.
SETTLED_AFTER_S = 300

# The newest row older than the cut-off, found walking back from the newest.
_HORIZON_SQL = sql(
    """
SELECT id FROM {taskevent} WHERE id > %s AND at < %s ORDER BY id DESC LIMIT 1
"""
)
# A published row's latency runs from its task's submission (or run_at); a
# retried task's from its first submission, the only one the row keeps.
_TOTALS_SQL = sql(
    """
SELECT tp.name, e.status, CASE WHEN e.status = 'published' THEN {index} END,
       count(*), sum(l.latency) FILTER (WHERE e.status = 'published')
  FROM {taskevent} e
  JOIN {task} t ON t.id = e.task_id
  JOIN {topic} tp ON tp.id = t.topic_id
 CROSS JOIN LATERAL (SELECT greatest(0, extract(epoch FROM e.at
        - greatest(t.created_at, coalesce(t.run_at, t.created_at))))::float8
        AS latency) l
 WHERE e.id > %s AND e.id <= %s
 GROUP BY 1, 2, 3
""",
    index=bucket_index_sql("l.latency"),
)
_NO_END = 2**63 - 1


@dataclass
class HistoryTotals:
    """Transitions by (topic, status); publication latency by topic."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    publish_latency: Histogram = field(
        default_factory=lambda: Histogram(PUBLISH_LATENCY_BOUNDS_S)
    )

    def plus(self, other: "HistoryTotals") -> "HistoryTotals":
        return HistoryTotals(
            self.counts + other.counts, self.publish_latency.plus(other.publish_latency)
        )


@dataclass
class _Settled:
    """This process's totals of the history up to `through_id`."""

    through_id: int = 0
    totals: HistoryTotals = field(default_factory=HistoryTotals)
    lock: threading.Lock = field(default_factory=threading.Lock)


_settled = _Settled()


def history_totals() -> HistoryTotals:
    """Return the totals over the whole history (see the module docstring)."""
    with _settled.lock:
        horizon = _settled_horizon(_settled.through_id)
        if horizon > _settled.through_id:
            newly = _totals_between(_settled.through_id, horizon)
            _settled.totals = _settled.totals.plus(newly)
            _settled.through_id = horizon
        return _settled.totals.plus(_totals_between(_settled.through_id, _NO_END))


def history_totals_forget() -> None:
    """Drop this process's folded totals (tests empty the tables under them)."""
    with _settled.lock:
        _settled.through_id = 0
        _settled.totals = HistoryTotals()


def _settled_horizon(after_id: int) -> int:
    cutoff = timezone.now() - timedelta(seconds=SETTLED_AFTER_S)
    with connection.cursor() as cursor:
        cursor.execute(_HORIZON_SQL, [after_id, cutoff])
        row = cursor.fetchone()
    return row[0] if row else after_id


def _totals_between(after_id: int, through_id: int) -> HistoryTotals:
    """Sum the history rows with after_id < id <= through_id."""
    totals = HistoryTotals()
    params = [*bound_params(PUBLISH_LATENCY_BOUNDS_S), after_id, through_id]
    with connection.cursor() as cursor:
        cursor.execute(_TOTALS_SQL, params)
        for topic, status, index, count, latency in cursor:
            totals.counts[topic, status] += count
            if index is not None:
                totals.publish_latency.add((topic,), index, count, latency)
    return totals
