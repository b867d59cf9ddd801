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
# How long `vacuum` waits for another connection to let a table's dead rows or
# empty tail go, and how often it tries again.
VACUUM_PATIENCE_S = 60.0
VACUUM_RETRY_S = 0.2
_HEAP_AND_DEAD_ROWS = (
    "SELECT pg_relation_size(%s), n_dead_tup FROM pg_stat_user_tables "
    "WHERE relid = %s::regclass"
)
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


def vacuum(
    tables: tuple[str, ...] = SIZED_TABLES, patience_s: float = VACUUM_PATIENCE_S
) -> None:
    """VACUUM `tables` (keys of services.sql.TABLES), each again until it has no
    dead row left and its file stopped shrinking (or `patience_s` passed).

    One VACUUM can fall short of what it can give back: rows deleted while an
    older snapshot lives stay, and the file's empty tail stays when another
    connection holds a lock on the table then. After some million-task runs
    the task table's heap stayed at its full size (which of the two, the runs
    do not tell): the sizes showed a purged table as full.
    """
    with connection.cursor() as cursor:
        for table in tables:
            name = TABLES[table]
            deadline = time.monotonic() + patience_s
            heap_before = None
            while True:
                cursor.execute(f"VACUUM {name}")
                cursor.execute(_HEAP_AND_DEAD_ROWS, [name, name])
                heap, dead = cursor.fetchone()
                if dead == 0 and heap == heap_before:
                    break
                if time.monotonic() > deadline:
                    print(
                        f"  {name}: {dead:,} dead rows left after VACUUMs for "
                        f"{patience_s:.0f} s; a connection holds an old snapshot "
                        "or a lock (pg_stat_activity names it)"
                    )
                    break
                heap_before = heap
                time.sleep(VACUUM_RETRY_S)


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
