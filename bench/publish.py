"""Benchmark the outbox publisher against a bare producer, and submit-to-Kafka latency.

Run against a fresh embedded stack:
    python -m scheduler_site.devstack exec -- .venv/bin/python bench/publish.py

Stores N tasks across 8 fresh topics (after one warm-up task per topic, so the
producer is connected and the topics confirmed), times `publish_pending_run`
moving them all to Kafka, then times a bare confluent-kafka producer (same
settings: idempotent, acks=all, linger 5 ms) sending the same envelopes to the
same broker (median of three runs), and prints both rates and their ratio. Then
it starts a Celery worker on the `publish` queue and submits tasks one at a time
to an idle stack, reporting how long each takes to be `published` through the
on-commit nudge. Topics (in Kafka and in the database) and the bench's tasks are
deleted at the end. Results and the machine: docs/benchmarks.md.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_site.settings")

import django  # noqa: E402

django.setup()

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from bench.lib import summary  # noqa: E402
from rotation.kafka.admin import ensure_topics  # noqa: E402
from rotation.kafka.producer import LINGER_MS, Headers  # noqa: E402
from tasks_app.models import OutboxEntry, Task, TaskStatus, Topic  # noqa: E402
from tasks_app.services.publisher.run import publish_pending_run  # noqa: E402
from tasks_app.services.tasks import TaskSpec, task_submit, task_submit_many  # noqa: E402
from tasks_app.services.topics import topic_create  # noqa: E402
from tasks_app.worker import runtime  # noqa: E402

DEFAULT_TASKS = 100_000
DEFAULT_TOPICS = 8
DEFAULT_SAMPLES = 50
# The bare run lasts well under a second, so it is repeated and the median kept.
BARE_RUNS = 3
# Pause between latency samples, so each task meets an idle stack.
IDLE_GAP_S = 0.2
WATCH_S = 0.001
WORKER_READY_S = 60.0
FLUSH_TIMEOUT_S = 60.0


def parse_args() -> argparse.Namespace:
    """Read the knobs: task count, topic count, latency samples."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=DEFAULT_TASKS)
    parser.add_argument("--topics", type=int, default=DEFAULT_TOPICS)
    parser.add_argument(
        "--samples",
        type=int,
        default=DEFAULT_SAMPLES,
        help="latency samples (0 skips the latency part)",
    )
    return parser.parse_args()


def submit(topics: list[str], count: int) -> float:
    """Store `count` tasks round-robin over the topics; return seconds taken."""
    chunk = settings.SCHEDULER_MAX_BULK_TASKS
    started = time.monotonic()
    for first in range(0, count, chunk):
        specs = [
            TaskSpec(topic=topics[n % len(topics)], message={"n": n})
            for n in range(first, min(first + chunk, count))
        ]
        task_submit_many(submitted_by=None, specs=specs)
    return time.monotonic() - started


def settle_tables() -> None:
    """Vacuum and analyze now, so autovacuum does not land inside the timed run."""
    with connection.cursor() as cursor:
        for table in ("tasks_app_task", "tasks_app_outboxentry", "tasks_app_taskevent"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def publish() -> int:
    """Run the publisher in this process, as the publisher worker would."""
    state = runtime()
    return publish_pending_run(producer=state.producer, kick_lanes=state.kick_lanes)


def time_publisher() -> float:
    """Run the publisher until the outbox is empty; return seconds taken."""
    started = time.monotonic()
    while OutboxEntry.objects.exists():
        publish()
    return time.monotonic() - started


def time_bare_producer(records: list[tuple[str, str, str, str]]) -> float:
    """Send (topic, key, envelope, task id) with a bare producer; return seconds."""
    failed: list[object] = []
    producer = Producer(
        {
            "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": LINGER_MS,
        }
    )
    producer.produce(records[0][0], value=b"warm-up")
    producer.flush(FLUSH_TIMEOUT_S)  # a new idempotent producer needs a moment

    def on_delivery(error: object, message: object) -> None:
        if error is not None:
            failed.append(error)

    started = time.monotonic()
    for topic, key, envelope, task_id in records:
        headers: Headers = [("task_id", task_id), ("content-type", b"application/json")]
        while True:
            try:
                producer.produce(
                    topic, envelope, key, headers=headers, on_delivery=on_delivery
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(FLUSH_TIMEOUT_S)
    elapsed = time.monotonic() - started
    if left or failed:
        sys.exit(f"bare producer: {left} undelivered, {len(failed)} failed")
    return elapsed


def measure_throughput(prefix: str, args: argparse.Namespace) -> None:
    """Compare the publisher and the bare producer on the same envelopes."""
    topics = [f"{prefix}-{n}" for n in range(args.topics)]
    for name in topics:
        topic_create(name=name)
    submit(topics, len(topics))  # one task each, so the timed run starts warm:
    publish()  # producer connected, topics confirmed in Kafka
    print(f"submitting {args.tasks} tasks across {len(topics)} topics ...")
    seconds = submit(topics, args.tasks)
    print(f"  stored in {seconds:.1f} s ({args.tasks / seconds:,.0f} tasks/s)")
    rows = OutboxEntry.objects.order_by("id").values_list(
        "topic_name", "key", "envelope", "task__uuid"
    )
    records = [(f"{t}-bare", k, e, str(u)) for t, k, e, u in rows]
    settle_tables()
    publisher_s = time_publisher()
    published = Task.objects.filter(topic__name__in=topics, status=TaskStatus.PUBLISHED)
    assert published.count() == args.tasks + len(topics), "tasks were left behind"
    failures = ensure_topics(
        settings.KAFKA_BOOTSTRAP_SERVERS, {f"{t}-bare": 1 for t in topics}
    )
    assert not failures, failures
    bare_runs = [time_bare_producer(records) for _ in range(BARE_RUNS)]
    bare_s = statistics.median(bare_runs)
    publisher_rate, bare_rate = args.tasks / publisher_s, args.tasks / bare_s
    print(
        f"publisher: {args.tasks} tasks in {publisher_s:.2f} s = "
        f"{publisher_rate:,.0f} tasks/s (batch {settings.SCHEDULER_PUBLISH_BATCH})"
    )
    print(
        f"bare producer: {args.tasks} messages in {bare_s:.2f} s = "
        f"{bare_rate:,.0f} messages/s (median of "
        f"{', '.join(f'{args.tasks / s:,.0f}' for s in bare_runs)})"
    )
    print(f"ratio publisher/bare: {publisher_rate / bare_rate:.3f}")
    summary.add(
        "publish",
        "publisher / bare producer",
        publisher_rate / bare_rate,
        "",
        detail=f"{publisher_rate:,.0f} vs {bare_rate:,.0f} msg/s",
    )


def start_worker(prefix: str) -> subprocess.Popen[bytes]:
    """Start a Celery worker on the publish queue, as the nudges expect."""
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "scheduler_site",
        "worker",
        "-Q",
        "publish",
        "--pool",
        "solo",
        "-c",
        "1",
        "--loglevel",
        "WARNING",
        "-n",
        f"{prefix}@%h",
    ]
    return subprocess.Popen(
        argv, cwd=REPO, env=os.environ.copy(), stdout=subprocess.DEVNULL
    )


def wait_published(task: Task, timeout_s: float) -> Task:
    """Poll the task's row until it is published; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = Task.objects.get(pk=task.pk)
        if row.status == TaskStatus.PUBLISHED:
            return row
        time.sleep(WATCH_S)
    sys.exit(f"task {task.uuid} was not published within {timeout_s:.0f} s")


def measure_latency(prefix: str, samples: int) -> None:
    """Submit tasks one at a time to an idle stack; report submit-to-published."""
    topic = f"{prefix}-latency"
    topic_create(name=topic)
    worker = start_worker(prefix)
    try:
        spec = TaskSpec(topic=topic, message={"latency": True})
        wait_published(task_submit(submitted_by=None, spec=spec), WORKER_READY_S)
        latencies_ms = []
        for _ in range(samples):
            time.sleep(IDLE_GAP_S)
            task = wait_published(task_submit(submitted_by=None, spec=spec), 10.0)
            assert task.published_at is not None  # wait_published waited for it
            delay = task.published_at - task.created_at
            latencies_ms.append(delay.total_seconds() * 1000)
    finally:
        worker.terminate()
        worker.wait(30)
    print(
        f"submit -> published over {samples} tasks on an idle stack (nudge path, "
        f"no beat): median {statistics.median(latencies_ms):.1f} ms, "
        f"p90 {statistics.quantiles(latencies_ms, n=10)[-1]:.1f} ms, "
        f"max {max(latencies_ms):.1f} ms"
    )


def clean_up(prefix: str) -> None:
    """Delete the bench's Kafka topics, tasks and topic rows."""
    names = list(
        Topic.objects.filter(name__startswith=prefix).values_list("name", flat=True)
    )
    kafka = [n for name in names for n in (name, f"{name}.dlq", f"{name}-bare")]
    admin = AdminClient({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS})
    for future in admin.delete_topics(kafka, operation_timeout=30).values():
        future.exception()  # a topic that was never created is fine
    topic_ids = list(Topic.objects.filter(name__in=names).values_list("id", flat=True))
    with connection.cursor() as cursor:
        for table in ("tasks_app_taskevent", "tasks_app_outboxentry"):
            cursor.execute(
                f"DELETE FROM {table} WHERE task_id IN "
                "(SELECT id FROM tasks_app_task WHERE topic_id = ANY(%s))",
                [topic_ids],
            )
        cursor.execute(
            "DELETE FROM tasks_app_task WHERE topic_id = ANY(%s)", [topic_ids]
        )
    Topic.objects.filter(id__in=topic_ids).delete()


def main() -> None:
    """Run the throughput comparison, then the latency measurement."""
    args = parse_args()
    call_command("migrate", interactive=False, verbosity=0)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        measure_throughput(prefix, args)
        if args.samples:
            measure_latency(prefix, args.samples)
    finally:
        clean_up(prefix)


if __name__ == "__main__":
    main()
