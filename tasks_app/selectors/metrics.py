"""Reads behind /metrics: cumulative figures from the tables the rotation writes.

Workers run on many hosts and come and go, so none of them serves its own
figures: each scrape derives them from PostgreSQL (task history, outbox,
slices, partition heads) and Redis (members, the rotation_events counts). Any
web process answers any scrape with the same, complete totals.

Histograms come back as bucket counts per label set, in Prometheus' sense: a
value counts in the first bucket whose upper bound it does not exceed.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Count
from django.utils import timezone

from tasks_app.models import OutboxEntry, PartitionHead, Topic
from tasks_app.services.sql import sql

Labels = tuple[str, ...]

# Upper bounds, in seconds or messages. Slices last about their topic's
# slice_ms (2 s by default); hand-offs take milliseconds when a member is idle.
SLICE_DURATION_BOUNDS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
SLICE_MESSAGES_BOUNDS = (0, 1, 5, 10, 25, 50, 100, 200, 500, 1000, 5000)
HANDOFF_GAP_BOUNDS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Histogram:
    """Per label set: the count in each bucket (the last is +Inf) and the sum."""

    bounds: Sequence[float]
    buckets: dict[Labels, list[int]] = field(default_factory=dict)
    sums: dict[Labels, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, labels: Labels, index: int, count: int, total: float) -> None:
        """Add `count` values summing to `total` to the bucket at `index`."""
        counts = self.buckets.setdefault(labels, [0] * (len(self.bounds) + 1))
        counts[index] += count
        self.sums[labels] += total

    def plus(self, other: "Histogram") -> "Histogram":
        """Return a new histogram holding both one's and the other's values."""
        total = Histogram(self.bounds)
        for histogram in (self, other):
            for labels, counts in histogram.buckets.items():
                for index, count in enumerate(counts):
                    total.add(labels, index, count, 0.0)
                total.sums[labels] += histogram.sums[labels]
        return total

    def cumulative(self, labels: Labels) -> list[tuple[str, int]]:
        """Return Prometheus' buckets for a label set: ("le", values <= le)."""
        running, out = 0, []
        names = [_bound_name(bound) for bound in self.bounds] + ["+Inf"]
        for name, count in zip(names, self.buckets[labels], strict=True):
            running += count
            out.append((name, running))
        return out


def _bound_name(bound: float) -> str:
    return repr(float(bound))


def bucket_index_sql(value: str) -> str:
    """SQL for the index of the first bound >= `value` (len(bounds) when none):
    width_bucket counts the bounds <= x, so count the negated bounds <= -value.
    Takes the bound count and the negated, ascending bounds as %s parameters."""
    return f"%s - width_bucket(-({value}), %s::float8[])"


def bound_params(bounds: Sequence[float]) -> list[Any]:
    return [len(bounds), sorted(-float(bound) for bound in bounds)]


def outbox_backlog() -> dict[str, int]:
    """Count the outbox entries due now, per topic: tasks waiting for Kafka."""
    rows = (
        OutboxEntry.objects.filter(available_at__lte=timezone.now())
        .order_by()
        .values_list("topic_name")
        .annotate(count=Count("id"))
    )
    return dict(rows)


@dataclass(frozen=True)
class SliceFigures:
    """Every recorded slice, summed per (group, topic): how long, how many
    messages, why each ended, and the gap before a hand-off."""

    durations: Histogram
    messages: Histogram
    handoff_gaps: Histogram
    end_reasons: dict[tuple[str, str, str], int]  # (group, topic, reason)


# A hand-off is a slice that ended at its deadline (the lane still had work)
# followed by the lane's next slice; the gap is the lane's idle time between.
_SLICES_SQL = sql(
    """
WITH s AS MATERIALIZED (
    SELECT g.group_id AS grp, tp.name AS topic, s.end_reason,
           extract(epoch FROM s.ended_at - s.started_at)::float8 AS duration,
           s.messages::float8 AS messages,
           CASE WHEN lag(s.end_reason) OVER lane = 'deadline' THEN greatest(0,
                extract(epoch FROM s.started_at - lag(s.ended_at) OVER lane))::float8
           END AS gap
      FROM {slice} s
      JOIN {consumergroup} g ON g.id = s.group_id
      JOIN {topic} tp ON tp.id = s.topic_id
    WINDOW lane AS (PARTITION BY s.group_id, s.topic_id, s.partition
                    ORDER BY s.started_at, s.id)
)
SELECT 'duration', grp, topic, {duration}, count(*), sum(duration)
  FROM s GROUP BY 2, 3, 4
 UNION ALL
SELECT 'messages', grp, topic, {messages}, count(*), sum(messages)
  FROM s GROUP BY 2, 3, 4
 UNION ALL
SELECT 'gap', grp, topic, {gap}, count(*), sum(gap)
  FROM s WHERE gap IS NOT NULL GROUP BY 2, 3, 4
 UNION ALL
SELECT 'reason:' || end_reason, grp, topic, 0, count(*), 0
  FROM s GROUP BY 1, 2, 3
""",
    duration=bucket_index_sql("duration"),
    messages=bucket_index_sql("messages"),
    gap=bucket_index_sql("gap"),
)


def slice_figures() -> SliceFigures:
    """Read every slice's figures in one pass over the Slice table."""
    figures = SliceFigures(
        durations=Histogram(SLICE_DURATION_BOUNDS_S),
        messages=Histogram(SLICE_MESSAGES_BOUNDS),
        handoff_gaps=Histogram(HANDOFF_GAP_BOUNDS_S),
        end_reasons={},
    )
    histograms = {
        "duration": figures.durations,
        "messages": figures.messages,
        "gap": figures.handoff_gaps,
    }
    params = [
        *bound_params(figures.durations.bounds),
        *bound_params(figures.messages.bounds),
        *bound_params(figures.handoff_gaps.bounds),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_SLICES_SQL, params)
        for kind, group, topic, index, count, total in cursor:
            if kind.startswith("reason:"):
                figures.end_reasons[group, topic, kind.removeprefix("reason:")] = count
            else:
                histograms[kind].add((group, topic), index, count, total)
    return figures


def partitions_lost() -> dict[str, int]:
    """Count, per topic, the partitions Kafka lost that have not healed yet."""
    rows = (
        PartitionHead.objects.filter(lost=True)
        .order_by()
        .values_list("topic__name")
        .annotate(count=Count("id"))
    )
    return dict(rows)


def topic_names() -> set[str]:
    """Name every topic, so a topic's counters exist from its first scrape."""
    return set(Topic.objects.values_list("name", flat=True))
