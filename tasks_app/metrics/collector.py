"""The Prometheus collector: every figure of the scheduler, read at scrape time.

A custom Collector (prometheus_client's "custom collectors") rather than
counters kept in each process: the figures already live in PostgreSQL and
Redis, where every worker on every host writes them, so reading them there
gives one complete, consistent answer from any web process, survives worker
restarts, and needs no port per worker. See docs/metrics.md for the list.
"""

import logging
import time
from collections.abc import Iterator

import redis
from prometheus_client import Histogram as ProcessHistogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from rotation.lanes import Lane
from tasks_app.errors import ServiceUnavailable
from tasks_app.models import TaskStatus
from tasks_app.selectors import members_reader
from tasks_app.selectors.fairness import fair_shares
from tasks_app.selectors.metrics import (
    Histogram,
    outbox_backlog,
    partitions_lost,
    slice_figures,
    topic_names,
)
from tasks_app.selectors.rotation import (
    LaneView,
    lane_holders,
    lanes_overview,
    slice_activity,
    window_ending_now,
)
from tasks_app.selectors.task_history import HistoryTotals, history_totals
from tasks_app.services.rotation_events import RotationEvent, rotation_event_totals

logger = logging.getLogger(__name__)

PREFIX = "scheduler_"
# The sliding window of the share and fairness gauges: the dashboard's default,
# long enough to hold many turns of every lane at the default 2 s slice.
FAIRNESS_WINDOW_S = 300
LANE_LABELS = ["group", "topic", "partition"]

# Each recorded transition, as the counter it feeds.
TASK_COUNTERS = {
    TaskStatus.PENDING: ("tasks_submitted", "Tasks accepted, or retried after dying"),
    TaskStatus.PUBLISHED: ("tasks_published", "Tasks produced to Kafka"),
    TaskStatus.RUNNING: ("tasks_started", "Handler attempts started"),
    TaskStatus.SUCCEEDED: ("tasks_succeeded", "Tasks whose handler succeeded"),
    TaskStatus.FAILED: ("tasks_failed", "Failed attempts that will be retried"),
    TaskStatus.DEAD: ("tasks_dead", "Tasks that used up their attempts"),
    TaskStatus.CANCELLED: ("tasks_cancelled", "Tasks cancelled before publishing"),
}

# Process-local: how long this collector takes. Under gunicorn with
# PROMETHEUS_MULTIPROC_DIR set it is summed over the web processes.
COLLECT_SECONDS = ProcessHistogram(
    f"{PREFIX}metrics_collect_seconds",
    "Time to read the scheduler's figures for one scrape",
)


class SchedulerCollector(Collector):
    """Yield the scheduler's metric families (PostgreSQL first, then Redis)."""

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        history = history_totals()
        yield from _task_counters(history)
        yield _gauge("outbox_backlog_tasks", "Outbox entries due", outbox_backlog())
        yield _histogram(
            "publish_latency_seconds",
            "Time from submission (or run_at) to publication",
            ["topic"],
            history.publish_latency,
        )
        yield from _slice_families()
        yield _gauge(
            "partitions_lost",
            "Partitions Kafka lost that await healing",
            partitions_lost(),
        )
        yield from _redis_families()
        COLLECT_SECONDS.observe(time.perf_counter() - started)


def _task_counters(history: HistoryTotals) -> Iterator[Metric]:
    counts = history.counts
    topics = sorted(topic_names() | {topic for topic, _ in counts})
    for status, (name, documentation) in TASK_COUNTERS.items():
        family = CounterMetricFamily(PREFIX + name, documentation, labels=["topic"])
        for topic in topics:
            family.add_metric([topic], counts.get((topic, status), 0))
        yield family


def _gauge(name: str, documentation: str, values: dict[str, int]) -> Metric:
    """A gauge by topic."""
    family = GaugeMetricFamily(PREFIX + name, documentation, labels=["topic"])
    for topic, value in sorted(values.items()):
        family.add_metric([topic], value)
    return family


def _histogram(
    name: str, documentation: str, labels: list[str], histogram: Histogram
) -> Metric:
    family = HistogramMetricFamily(PREFIX + name, documentation, labels=labels)
    for label_values in sorted(histogram.buckets):
        family.add_metric(
            list(label_values),
            buckets=histogram.cumulative(label_values),
            sum_value=histogram.sums[label_values],
        )
    return family


def _slice_families() -> Iterator[Metric]:
    figures = slice_figures()
    labels = ["group", "topic"]
    yield _histogram(
        "slice_duration_seconds", "How long slices lasted", labels, figures.durations
    )
    yield _histogram(
        "slice_messages", "Messages run per slice", labels, figures.messages
    )
    yield _histogram(
        "handoff_gap_seconds",
        "A lane's idle time between a slice its deadline ended and the next",
        labels,
        figures.handoff_gaps,
    )
    ended = CounterMetricFamily(
        f"{PREFIX}slices", "Slices by why they ended", labels=[*labels, "reason"]
    )
    for label_values, count in sorted(figures.end_reasons.items()):
        ended.add_metric(list(label_values), count)
    yield ended


def _redis_families() -> Iterator[Metric]:
    """Families that need Redis; without it, say so and leave them out."""
    try:
        families = list(_lane_families()) + list(_rotation_families())
    except (redis.RedisError, ServiceUnavailable) as exc:
        logger.warning("/metrics without Redis's figures: %s", exc)
        families, up = [], 0
    else:
        up = 1
    yield GaugeMetricFamily(
        f"{PREFIX}metrics_redis_up", "1 when Redis answered this scrape", value=up
    )
    yield from families


def _lane_families() -> Iterator[Metric]:
    lanes = lanes_overview()
    holders = lane_holders(lanes=[view.lane for view in lanes])
    lag = GaugeMetricFamily(
        f"{PREFIX}lane_lag_messages",
        "Messages published to the lane that its group has not run",
        labels=LANE_LABELS,
    )
    paused = GaugeMetricFamily(
        f"{PREFIX}lane_paused", "1 when the lane's topic is paused", labels=LANE_LABELS
    )
    waiting = GaugeMetricFamily(
        f"{PREFIX}lane_waiting_seconds",
        "How long a lane with work and no holder has waited since its last slice",
        labels=LANE_LABELS,
    )
    now = time.time()
    for view in lanes:
        labels = [view.stats.group, view.stats.topic, str(view.stats.partition)]
        lag.add_metric(labels, view.stats.lag)
        paused.add_metric(labels, int(view.stats.paused))
        waiting.add_metric(labels, _waiting_s(view, holders, now))
    yield from (lag, paused, waiting)


def _waiting_s(view: LaneView, holders: dict[Lane, str], now: float) -> float:
    """Seconds since the last slice of a runnable lane nobody holds, else 0."""
    last = view.last_slice
    idle = view.stats.lag > 0 and not view.stats.paused and view.lane not in holders
    return max(0.0, now - last.ended_at.timestamp()) if idle and last else 0.0


def _rotation_families() -> Iterator[Metric]:
    live = members_reader().live()
    yield GaugeMetricFamily(
        f"{PREFIX}members_live", "Workers that beat recently", value=len(live)
    )
    yield from _fairness_families(live)
    totals = rotation_event_totals()
    for event, name, documentation in (
        (RotationEvent.FENCED, "fencing_refusals", "Stale tokens the fence refused"),
        (RotationEvent.HEALED, "lane_heals", "Lost lanes published again"),
    ):
        family = CounterMetricFamily(
            PREFIX + name, documentation, labels=["group", "topic"]
        )
        for (kind, group, topic), count in sorted(totals.items()):
            if kind == event:
                family.add_metric([group, topic], count)
        yield family


def _fairness_families(live: list[str]) -> Iterator[Metric]:
    """Shares of slice time over the window (the dashboard's fairness panel)."""
    fairness = fair_shares(
        activity=slice_activity(window=window_ending_now(FAIRNESS_WINDOW_S)),
        members=live,
    )
    yield GaugeMetricFamily(
        f"{PREFIX}fairness_window_seconds",
        "The sliding window of the share gauges",
        value=FAIRNESS_WINDOW_S,
    )
    for kind, shares in (("topic", fairness.topics), ("member", fairness.members)):
        share = GaugeMetricFamily(
            f"{PREFIX}{kind}_share_ratio",
            f"Each {kind}'s part of the window's slice time",
            labels=[kind],
        )
        fair = GaugeMetricFamily(
            f"{PREFIX}{kind}_fair_share_ratio",
            f"The part the weights entitle each {kind} to",
            labels=[kind],
        )
        for item in shares:
            share.add_metric([item.name], item.share)
            fair.add_metric([item.name], item.fair_share)
        yield from (share, fair)
    jain = GaugeMetricFamily(
        f"{PREFIX}fairness_jain_index",
        "Jain's index of slice time against fair shares (1 is fair)",
        labels=["over"],
    )
    for over, index in (
        ("lanes", fairness.lanes_index),
        ("members", fairness.members_index),
    ):
        if index is not None:
            jain.add_metric([over], index)
    yield jain
