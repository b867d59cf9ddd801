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
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_site.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from tasks_app.models import Topic  # noqa: E402
from tasks_app.services.retention import tasks_purge  # noqa: E402
from tasks_app.services.sql import TABLES, sql  # noqa: E402

DEFAULT_TASKS = 1_000_000
TOPICS = 8
REQUESTS = 7
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


def fill(count: int) -> list[str]:
    """Write `count` tasks and their events over fresh topics; return the topics."""
    names = [f"bench-reads-{uuid.uuid4().hex[:6]}-{i}" for i in range(TOPICS)]
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


def median_ms(client: Client, url: str) -> float:
    """GET `url` REQUESTS times (after one warm-up); return the median in ms."""
    timings = []
    for attempt in range(REQUESTS + 1):
        started = time.perf_counter()
        response = client.get(url, secure=True)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"GET {url} answered {response.status_code}")
        if attempt:
            timings.append(elapsed)
    return statistics.median(timings) * 1000


def sizes() -> list[tuple[str, int, int]]:
    """(table, heap bytes, index bytes) of the task tables."""
    with connection.cursor() as cursor:
        rows = []
        for table in ("task", "taskevent"):
            cursor.execute(
                "SELECT pg_table_size(%s), pg_indexes_size(%s)",
                [TABLES[table], TABLES[table]],
            )
            heap, index = cursor.fetchone()
            rows.append((TABLES[table], heap, index))
        return rows


def print_sizes(title: str) -> None:
    print(title)
    for table, heap, index in sizes():
        heap_mib, index_mib = heap / 2**20, index / 2**20
        print(f"  {table:<24}{heap_mib:>10.1f} MiB heap{index_mib:>10.1f} MiB indexes")


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    topics = fill(args.tasks)
    print(
        f"{args.tasks:,} tasks and events written in {time.monotonic() - started:.1f} s"
    )
    user = User.objects.create_superuser(f"bench-{uuid.uuid4().hex[:8]}")
    api, admin = APIClient(), Client()
    api.force_authenticate(user)
    admin.force_login(user)
    reads = {
        "GET /api/tasks/?status=dead": (api, "/api/tasks/?status=dead"),
        "GET /api/tasks/?topic=X&status=failed": (
            api,
            f"/api/tasks/?topic={topics[3]}&status=failed",
        ),
        "GET /api/stats/": (api, "/api/stats/"),
        "admin task changelist": (admin, "/admin/tasks_app/task/"),
        "admin changelist, status=dead": (
            admin,
            "/admin/tasks_app/task/?status__exact=dead",
        ),
    }
    print(f"\nMedian of {REQUESTS} requests, {args.tasks:,} tasks stored")
    for name, (client, url) in reads.items():
        print(f"  {name:<42}{median_ms(client, url):>10.1f} ms")
    print()
    print_sizes("Sizes before the purge")
    started = time.monotonic()
    purged = tasks_purge(older_than=timedelta(days=1), batch=1000, budget_s=3600)
    elapsed = time.monotonic() - started
    print(
        f"\nPurged {purged:,} finished tasks in {elapsed:.1f} s "
        f"= {purged / elapsed:,.0f} tasks/s"
    )
    with connection.cursor() as cursor:
        for table in ("task", "taskevent"):
            cursor.execute(f"VACUUM {TABLES[table]}")
    print_sizes("Sizes after the purge and a VACUUM (space reusable, files not shrunk)")


if __name__ == "__main__":
    main()
