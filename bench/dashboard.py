"""Benchmark the dashboard's reads on big tables: every panel's selector and the
whole JSON answer, per window, against a table scan of the same query.

Run against a fresh embedded stack:
    python -m scheduler_site.devstack exec -- .venv/bin/python bench/dashboard.py

Stores N finished tasks (default 1,000,000) on 8 topics, created over the last
TASK_SPAN_S in id order and finished 1-30 s later (as a FIFO system finishes
them), and a slice every 2 s on each of 16 lanes over the same span; runs
VACUUM ANALYZE, then times each read (median of REPEATS) for the 1, 5 and
15-minute windows. The throughput query is also timed with index scans turned
off, to show what the BRIN index saves. Rows are deleted at the end. Results
and the machine: docs/benchmarks.md.
"""

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_site.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from tasks_app.dashboard.payload import dashboard_data  # noqa: E402
from tasks_app.models import ConsumerGroup, GroupTopic, Topic  # noqa: E402
from tasks_app.selectors.fairness import fair_shares  # noqa: E402
from tasks_app.selectors.rotation import (  # noqa: E402
    WINDOW_CHOICES_S,
    LaneActivity,
    lanes_overview,
    slice_activity,
    timeline_slices,
    window_ending_now,
)
from tasks_app.selectors.throughput import (  # noqa: E402
    dead_tasks_recent,
    throughput_series,
)

TOPICS = 8
PARTITIONS = 2
TASK_SPAN_S = 2 * 3600
SLICE_EVERY_S = 2
REPEATS = 5
PREFIX = "bench-dash"

_TASKS_SQL = """
INSERT INTO tasks_app_task (uuid, topic_id, key, message, request_hash, status,
       attempts, created_at, finished_at, worker, error)
SELECT gen_random_uuid(), (%(topics)s::bigint[])[1 + i %% %(n_topics)s], 'k',
       '{}'::jsonb, '', CASE WHEN i %% 1000 = 0 THEN 'dead' ELSE 'succeeded' END,
       1, created, created + (1 + i %% 30) * interval '1 second', 'w', ''
  FROM generate_series(1, %(n)s) AS i,
       LATERAL (SELECT now() - (%(n)s - i) * %(step)s * interval '1 second'
                AS created) c
"""
_SLICES_SQL = """
INSERT INTO tasks_app_slice (group_id, topic_id, partition, member, token,
       started_at, ended_at, messages, first_offset, last_offset, end_reason)
SELECT %(group)s, (%(topics)s::bigint[])[1 + lane / %(partitions)s],
       lane %% %(partitions)s, 'w' || (lane %% 3), i, ended - interval '2 s',
       ended, 100, i * 100, i * 100 + 99, 'deadline'
  FROM generate_series(0, %(lanes)s - 1) AS lane,
       generate_series(1, %(slices)s) AS i,
       LATERAL (SELECT now() - (%(slices)s - i) * %(every)s * interval '1 second'
                AS ended) e
"""
_SCAN_OFF = "SET enable_indexscan = off; SET enable_bitmapscan = off"
_SCAN_ON = "RESET enable_indexscan; RESET enable_bitmapscan"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    return parser.parse_args()


def seed(tasks: int) -> list[int]:
    """Store the bench's topics, tasks and slices; return the topic ids."""
    group = ConsumerGroup.objects.create(group_id=PREFIX)
    topics = Topic.objects.bulk_create(
        Topic(name=f"{PREFIX}-{i}", partitions=PARTITIONS) for i in range(TOPICS)
    )
    GroupTopic.objects.bulk_create(GroupTopic(group=group, topic=t) for t in topics)
    ids = [topic.pk for topic in topics]
    with connection.cursor() as cursor:
        cursor.execute(
            _TASKS_SQL,
            {
                "topics": ids,
                "n_topics": TOPICS,
                "n": tasks,
                "step": TASK_SPAN_S / tasks,
            },
        )
        cursor.execute(
            _SLICES_SQL,
            {
                "group": group.pk,
                "topics": ids,
                "partitions": PARTITIONS,
                "lanes": TOPICS * PARTITIONS,
                "slices": TASK_SPAN_S // SLICE_EVERY_S,
                "every": SLICE_EVERY_S,
            },
        )
        cursor.execute("VACUUM ANALYZE tasks_app_task")
        cursor.execute("VACUUM ANALYZE tasks_app_slice")
    return ids


def median_ms(read: Callable[[], object]) -> float:
    """Time a read REPEATS times (after one warm-up) and return the median."""
    read()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        read()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def reads(window_s: int) -> dict[str, Callable[[], object]]:
    """Name each read of the dashboard over a window ending at each call."""

    def activity() -> list[LaneActivity]:
        return slice_activity(window=window_ending_now(window_s))

    return {
        "throughput + latency": lambda: throughput_series(
            window=window_ending_now(window_s)
        ),
        "dead tasks": lambda: dead_tasks_recent(window=window_ending_now(window_s)),
        "slice activity": activity,
        "fair shares": lambda: fair_shares(activity=activity(), members=[]),
        "timeline slices": lambda: timeline_slices(window=window_ending_now(window_s)),
        "lanes": lanes_overview,
        "whole JSON answer": lambda: dashboard_data(window_s=window_s),
    }


def scanned_throughput_ms(window_s: int) -> float:
    """Time the throughput query with index scans off (a table scan)."""
    with connection.cursor() as cursor:
        cursor.execute(_SCAN_OFF)
    try:
        return median_ms(lambda: throughput_series(window=window_ending_now(window_s)))
    finally:
        with connection.cursor() as cursor:
            cursor.execute(_SCAN_ON)


def sizes() -> str:
    """Describe the task table's and the BRIN index's sizes."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_size_pretty(pg_relation_size('tasks_app_task')),"
            " pg_size_pretty(pg_relation_size('task_finished_brin')),"
            " pg_size_pretty(pg_relation_size('slice_ended_at'))"
        )
        table, brin, slices = cursor.fetchone()
    return f"task table {table}, task_finished_brin {brin}, slice_ended_at {slices}"


def clean(topic_ids: list[int]) -> None:
    """Delete the bench's rows."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM tasks_app_task WHERE topic_id = ANY(%s)", [topic_ids]
        )
        cursor.execute(
            "DELETE FROM tasks_app_slice WHERE topic_id = ANY(%s)", [topic_ids]
        )
    Topic.objects.filter(pk__in=topic_ids).delete()
    ConsumerGroup.objects.filter(group_id=PREFIX).delete()


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    topic_ids = seed(args.tasks)
    print(
        f"seeded {args.tasks:,} tasks and {TOPICS * PARTITIONS} lanes of slices "
        f"in {time.perf_counter() - started:.1f} s; {sizes()}"
    )
    try:
        for window_s in WINDOW_CHOICES_S:
            print(f"window {window_s} s:")
            for name, read in reads(window_s).items():
                print(f"  {name:<22} {median_ms(read):8.1f} ms")
            scanned = scanned_throughput_ms(window_s)
            print(f"  {'throughput, no index':<22} {scanned:8.1f} ms")
    finally:
        clean(topic_ids)


if __name__ == "__main__":
    main()
