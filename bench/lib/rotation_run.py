"""Drive the real stack for bench/rotation.py: processes, API submission, waiting.

Import after django.setup(); the bench script does that first.
"""

import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Sum
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from bench.lib.figures import SliceRow, TaskRow
from rotation.lanes import KEY_PREFIX, text
from rotation.members import Members
from scheduler_site.devstack.celery_processes import CeleryProcesses as Processes
from tasks_app.models import Slice, Task, TaskCount, TaskStatus
from tasks_app.redis_client import redis_client
from tasks_app.roles import Role
from tasks_app.services.topics import topic_create
from tasks_app.services.users import user_role_grant

TASKS_URL = "/api/tasks/"
JOIN_TIMEOUT_S = 60.0
WATCH_S = 0.2
# A phase that makes no progress for this long has stalled.
STALL_S = 60.0
FINISHED = (TaskStatus.SUCCEEDED, TaskStatus.DEAD)
NOOP_HANDLER = "tasks_app.handlers.noop"


def make_topics(prefix: str, count: int, *, slice_ms: int, paused: bool) -> list[str]:
    """Create `count` topics with the no-op handler; return their names."""
    names = [f"{prefix}-{n}" for n in range(count)]
    for name in names:
        topic_create(name=name, handler=NOOP_HANDLER, slice_ms=slice_ms, paused=paused)
    return names


def api_client() -> APIClient:
    """Return an in-process API client signed in with a bench submitter's token."""
    user, _ = get_user_model().objects.get_or_create(username="bench-rotation")
    user_role_grant(user=user, role=Role.SUBMITTER)
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient(SERVER_NAME="localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def start_stack(processes: Processes, workers: int) -> dict[str, int]:
    """Start publisher, beat and rotation workers; return {member: pid} once joined."""
    processes.worker("publisher", "publish")
    processes.beat()
    pids = {
        f"w{n}@{socket.gethostname()}": processes.worker(f"w{n}", "rotation")
        for n in range(1, workers + 1)
    }
    registry = Members(redis_client(), heartbeat_s=settings.SCHEDULER_HEARTBEAT_S)
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while not set(pids) <= set(registry.live()):
        processes.check_alive()
        if time.monotonic() > deadline:
            sys.exit(f"rotation workers did not join; see {processes.log_dir}")
        time.sleep(0.1)
    return pids


def submit(
    client: APIClient,
    topics: list[str],
    count: int,
    *,
    start: int = 0,
    stop: threading.Event | None = None,
) -> float:
    """POST tasks number `start` to `start + count` as bulk lists, round-robin
    over topics, until `stop` is set; return seconds."""
    chunk = settings.SCHEDULER_MAX_BULK_TASKS
    started = time.monotonic()
    end = start + count
    for first in range(start, end, chunk):
        if stop is not None and stop.is_set():
            break
        body = [
            {"topic": topics[n % len(topics)], "message": {"n": n}}
            for n in range(first, min(first + chunk, end))
        ]
        # secure: as through the TLS proxy; the settings redirect plain HTTP.
        # return=minimal: a bulk client needs the ids, not each task in full.
        response = client.post(
            TASKS_URL,
            body,
            format="json",
            secure=True,
            headers={"Prefer": "return=minimal"},
        )
        if response.status_code != 201:
            sys.exit(f"submit failed: {response.status_code} {response.data}")
    return time.monotonic() - started


def wait_until(
    processes: Processes, done: Callable[[], int], count: int, what: str
) -> None:
    """Wait until `done()` reaches `count`; fail, describing the lanes, if a
    process died or nothing moved for STALL_S."""
    reached, moved_at = -1, time.monotonic()
    while True:
        now_reached = done()
        if now_reached >= count:
            return
        processes.check_alive()
        if now_reached != reached:
            reached, moved_at = now_reached, time.monotonic()
        elif time.monotonic() - moved_at > STALL_S:
            describe_stall()
            sys.exit(f"stalled: {reached} of {count} tasks {what}; see above")
        time.sleep(WATCH_S)


_STALL_SQL = """
SELECT t.name, s.epoch, s.next_offset, h.end_offset,
       count(*) FILTER (WHERE k.status NOT IN ('succeeded', 'dead')) AS unfinished,
       min(k."offset") FILTER (WHERE k.status NOT IN ('succeeded', 'dead')),
       string_agg(DISTINCT k.status, ',')
  FROM tasks_app_topic t
  JOIN tasks_app_task k ON k.topic_id = t.id
  LEFT JOIN tasks_app_lanestate s ON s.topic_id = t.id
  LEFT JOIN tasks_app_partitionhead h ON h.topic_id = t.id
 GROUP BY 1, 2, 3, 4
HAVING count(*) FILTER (WHERE k.status NOT IN ('succeeded', 'dead')) > 0
"""


def describe_stall() -> None:
    """Print, per topic with unfinished tasks, its lane's state and the rotation's
    Redis keys: enough to tell a lost task from a lane nobody runs."""
    with connection.cursor() as cursor:
        cursor.execute(_STALL_SQL)
        for row in cursor.fetchall():
            print("topic, epoch, next_offset, end_offset, unfinished, first, statuses:")
            print("  ", row)
    client = redis_client()
    readers = {
        "string": client.get,
        "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
        "hash": client.hgetall,
    }
    for key in sorted(client.scan_iter(f"{KEY_PREFIX}:*")):
        kind = text(client.type(key))
        value = readers[kind](key) if kind in readers else kind
        print("  ", key.decode(), value)


def count_in(topics: list[str], statuses: tuple[str, ...]) -> Callable[[], int]:
    """Return a counter of the topics' tasks in `statuses`: the counts
    PostgreSQL keeps (TaskCount), a few rows, where counting the task rows
    cost PostgreSQL ~40 ms a poll, inside the phase being measured."""
    rows = TaskCount.objects.filter(topic__name__in=topics, status__in=statuses)
    return lambda: rows.aggregate(n=Sum("count"))["n"] or 0


def _task_row(
    topic: str,
    pk: int,
    partition: int | None,
    offset: int | None,
    created: datetime,
    published: datetime | None,
    started: datetime | None,
    finished: datetime | None,
    status: str,
) -> TaskRow:
    """Read a finished task back; a bench task that has not run is a bench bug."""
    if partition is None or offset is None or not (published and started and finished):
        raise ValueError(
            f"task {pk} of {topic} has not run; the bench waited too little"
        )
    return TaskRow(
        topic, pk, partition, offset, created.timestamp(), published.timestamp(),
        started.timestamp(), finished.timestamp(), status == TaskStatus.SUCCEEDED,
    )  # fmt: skip


def collect(topics: list[str]) -> tuple[list[TaskRow], list[SliceRow]]:
    """Read the topics' tasks and slices back as plain rows (epoch seconds)."""
    tasks = [
        _task_row(*row)
        for row in Task.objects.filter(topic__name__in=topics).values_list(
            "topic__name", "id", "partition", "offset", "created_at", "published_at",
            "started_at", "finished_at", "status",
        )
    ]  # fmt: skip
    slices = [
        SliceRow(
            topic, partition, member, started.timestamp(), ended.timestamp(),
            messages, first_offset, end_reason,
        )
        for topic, partition, member, started, ended, messages, first_offset, end_reason
        in Slice.objects.filter(topic__name__in=topics).values_list(
            "topic__name", "partition", "member", "started_at", "ended_at",
            "messages", "first_offset", "end_reason",
        )
    ]  # fmt: skip
    return tasks, slices
