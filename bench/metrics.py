"""Benchmark a /metrics scrape on big tables: each read of the collector and the
whole answer, as Prometheus would get it.

Run against a fresh embedded stack:
    python -m scheduler_site.devstack exec -- .venv/bin/python bench/metrics.py

Stores bench/dashboard.py's data (N finished tasks on 8 topics over 2 hours,
a slice every 2 s on 16 lanes), gives every task a publication time and the
four history rows a run leaves (pending, published, running, succeeded or
dead), runs VACUUM ANALYZE, then times each read (median of REPEATS): the
history's first read in a process (it folds every settled row) and later ones
(only the last SETTLED_AFTER_S), the slices, and the whole answer. Rows are
deleted at the end. Results and the machine: docs/benchmarks.md.
"""

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from django.db import connection  # noqa: E402
from prometheus_client import generate_latest  # noqa: E402

from bench.dashboard import clean, median_ms, seed, sizes  # noqa: E402 (sets up Django)
from tasks_app.metrics.views import scrape_registry  # noqa: E402
from tasks_app.selectors.metrics import outbox_backlog, slice_figures  # noqa: E402
from tasks_app.selectors.rotation import lanes_overview  # noqa: E402
from tasks_app.selectors.task_history import (  # noqa: E402
    history_totals,
    history_totals_forget,
)

# Published 50 ms to 2 s after submission; history as a run leaves it.
_PUBLISHED_SQL = """
UPDATE tasks_app_task
   SET published_at = created_at + (50 + id %% 1950) * interval '1 millisecond'
 WHERE topic_id = ANY(%s)
"""
_EVENTS_SQL = """
INSERT INTO tasks_app_taskevent (task_id, status, at, worker, attempt, detail)
SELECT t.id, e.status,
       CASE e.status WHEN 'published' THEN t.published_at ELSE t.created_at END,
       '', 1, ''
  FROM tasks_app_task t,
       unnest(ARRAY['pending', 'published', 'running', t.status]) AS e(status)
 WHERE t.topic_id = ANY(%s)
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    return parser.parse_args()


def add_history(topic_ids: list[int]) -> int:
    """Give the bench's tasks publication times and history; return its rows."""
    with connection.cursor() as cursor:
        cursor.execute(_PUBLISHED_SQL, [topic_ids])
        cursor.execute(_EVENTS_SQL, [topic_ids])
        events = cursor.rowcount
        cursor.execute("VACUUM ANALYZE tasks_app_task")
        cursor.execute("VACUUM ANALYZE tasks_app_taskevent")
    return events


def remove_history(topic_ids: list[int]) -> None:
    """Delete the history first: the database's foreign key does not cascade."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM tasks_app_taskevent WHERE task_id IN "
            "(SELECT id FROM tasks_app_task WHERE topic_id = ANY(%s))",
            [topic_ids],
        )


def first_history_read() -> object:
    """A process's first read of the history: it folds every settled row."""
    history_totals_forget()
    return history_totals()


def reads() -> dict[str, Callable[[], object]]:
    """Name each read of a scrape, and the whole scrape."""
    return {
        "history, first scrape": first_history_read,
        "history, later scrapes": history_totals,
        "slice figures": slice_figures,
        "outbox backlog": outbox_backlog,
        "lanes": lanes_overview,
        "whole scrape, later": lambda: generate_latest(scrape_registry()),
    }


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    topic_ids = seed(args.tasks)
    try:
        events = add_history(topic_ids)
        print(
            f"seeded {args.tasks:,} tasks, {events:,} history rows and 16 lanes of "
            f"slices in {time.perf_counter() - started:.1f} s; {sizes()}"
        )
        for name, read in reads().items():
            print(f"  {name:<24} {median_ms(read):8.1f} ms")
    finally:
        remove_history(topic_ids)
        clean(topic_ids)


if __name__ == "__main__":
    main()
