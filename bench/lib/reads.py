"""The reads operators make, timed through the whole Django stack, and the sizes
of the task tables: what bench/million_reads.py and bench/scale/million.py report.

Import after django.setup(); the bench script does that first.
"""

import statistics
import time
import uuid
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from tasks_app.services.sql import TABLES

REQUESTS = 7
# The tables a task's life writes to: the task, its history, the outbox it is
# published from, the kept counts, and the lanes' slice records.
SIZED_TABLES = ("task", "taskevent", "outbox", "taskcount", "slice")
# The settings' default ALLOWED_HOSTS holds localhost, not the test client's
# "testserver".
HOST = "localhost"


@dataclass(frozen=True)
class TableSize:
    """One table's bytes on disk: everything, the main heap alone, its indexes."""

    table: str
    total: int  # pg_total_relation_size: heap, TOAST, free space map, indexes
    heap: int  # pg_relation_size: the main fork only
    indexes: int  # pg_indexes_size


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


def read_latencies(topic: str) -> dict[str, float]:
    """Time the operators' reads as a fresh superuser: the dead tasks, `topic`'s
    failed tasks, the stats, the admin's changelist (all and dead); median ms."""
    user = User.objects.create_superuser(f"bench-{uuid.uuid4().hex[:8]}")
    api, admin = APIClient(SERVER_NAME=HOST), Client(SERVER_NAME=HOST)
    api.force_authenticate(user)
    admin.force_login(user)
    reads: dict[str, tuple[Client, str]] = {
        "GET /api/tasks/?status=dead": (api, "/api/tasks/?status=dead"),
        "GET /api/tasks/?topic=X&status=failed": (
            api,
            f"/api/tasks/?topic={topic}&status=failed",
        ),
        "GET /api/stats/": (api, "/api/stats/"),
        "admin task changelist": (admin, "/admin/tasks_app/task/"),
        "admin changelist, status=dead": (
            admin,
            "/admin/tasks_app/task/?status__exact=dead",
        ),
    }
    return {name: median_ms(client, url) for name, (client, url) in reads.items()}


def print_reads(latencies: dict[str, float]) -> None:
    print(f"Median of {REQUESTS} requests after a warm-up")
    for name, ms in latencies.items():
        print(f"  {name:<42}{ms:>10.1f} ms")


def sizes(tables: tuple[str, ...] = SIZED_TABLES) -> list[TableSize]:
    """Measure `tables` (keys of services.sql.TABLES)."""
    with connection.cursor() as cursor:
        rows = []
        for table in tables:
            name = TABLES[table]
            cursor.execute(
                "SELECT pg_total_relation_size(%s), pg_relation_size(%s), "
                "pg_indexes_size(%s)",
                [name, name, name],
            )
            total, heap, indexes = cursor.fetchone()
            rows.append(TableSize(name, total, heap, indexes))
        return rows


def print_sizes(title: str, measured: list[TableSize]) -> None:
    print(title)
    for size in measured:
        total, heap, indexes = (
            b / 2**20 for b in (size.total, size.heap, size.indexes)
        )
        print(
            f"  {size.table:<24}{total:>10.1f} MiB total{heap:>10.1f} MiB heap"
            f"{indexes:>10.1f} MiB indexes"
        )
