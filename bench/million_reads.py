"""Benchmark the reads operators make with a million tasks stored, and the table sizes.

Run against a fresh embedded stack (`make bench` does):
    python -m scheduler_site.devstack exec -- .venv/bin/python bench/million_reads.py

Writes N tasks (default 1,000,000) over 8 topics straight into PostgreSQL in
one statement, with the status mix of a long-running system (96% succeeded,
1% each dead, failed, cancelled and published) and one history event each, then
times, as an operator through the whole Django stack (DRF's test client): the
dead tasks, one topic's failed tasks, the stats endpoint, and the admin's task
changelist unfiltered and filtered by status (median of several requests each).
Then it reports the table and index sizes, purges what a retention of one day
would (every finished task is dated two days back) and reports them again.
"""

import argparse
import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_site.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from bench.lib.reads import (  # noqa: E402
    print_reads,
    print_sizes,
    read_latencies,
    sizes,
    vacuum,
)
from tasks_app.models import Topic  # noqa: E402
from tasks_app.services.retention import tasks_purge  # noqa: E402
from tasks_app.services.sql import TABLES, sql  # noqa: E402

DEFAULT_TASKS = 1_000_000
TOPICS = 8
# Status by task number modulo 100: the mix of a system that has run a while.
STATUS_MIX = """CASE n %% 100 WHEN 0 THEN 'dead' WHEN 1 THEN 'failed'
    WHEN 2 THEN 'cancelled' WHEN 3 THEN 'published' ELSE 'succeeded' END"""
FILL = """
INSERT INTO {task} (uuid, topic_id, key, message, status, attempts, created_at,
                    finished_at, request_hash, worker, error)
SELECT gen_random_uuid(), (%(topic_ids)s::bigint[])[1 + n %% 8], 'k' || (n %% 50),
       jsonb_build_object('n', n), {status_mix}, 1,
       now() - interval '2 days' + n * interval '1 millisecond',
       now() - interval '2 days' + n * interval '1 millisecond', '', 'bench', ''
FROM generate_series(1, %(count)s) AS n
"""
EVENTS = """
INSERT INTO {taskevent} (task_id, status, at, worker, attempt, detail)
SELECT id, status, created_at, 'bench', 1, '' FROM {task} WHERE worker = 'bench'
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=DEFAULT_TASKS)
    return parser.parse_args()


def fill(count: int, prefix: str = "bench-reads") -> list[str]:
    """Write `count` tasks and their events over fresh topics named after
    `prefix`; return the topics."""
    names = [f"{prefix}-{uuid.uuid4().hex[:6]}-{i}" for i in range(TOPICS)]
    topics = Topic.objects.bulk_create([Topic(name=n) for n in names])
    with connection.cursor() as cursor:
        cursor.execute(
            sql(FILL, status_mix=STATUS_MIX),
            {"topic_ids": [t.pk for t in topics], "count": count},
        )
        cursor.execute(sql(EVENTS))
        for table in ("task", "taskevent"):
            cursor.execute(f"VACUUM ANALYZE {TABLES[table]}")
    return names


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    topics = fill(args.tasks)
    print(
        f"{args.tasks:,} tasks and events written in {time.monotonic() - started:.1f} s"
    )
    print(f"\n{args.tasks:,} tasks stored")
    print_reads(read_latencies(topics[3]))
    print()
    print_sizes("Sizes before the purge", sizes())
    started = time.monotonic()
    purged = tasks_purge(older_than=timedelta(days=1), batch=1000, budget_s=3600)
    elapsed = time.monotonic() - started
    print(
        f"\nPurged {purged:,} finished tasks in {elapsed:.1f} s "
        f"= {purged / elapsed:,.0f} tasks/s"
    )
    vacuum(("task", "taskevent"))
    print_sizes(
        "Sizes after the purge and a VACUUM (space reusable, files not shrunk)",
        sizes(),
    )


if __name__ == "__main__":
    main()
