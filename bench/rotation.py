"""Benchmark the rotation end to end against bare Kafka and plain Celery.

Run against a fresh embedded stack:
    SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(50))') \
    python -m scheduler_site.devstack exec -- .venv/bin/python bench/rotation.py

Starts the publisher, beat and the rotation workers (real Celery processes) and
runs three phases, each on fresh topics with the no-op handler, tasks POSTed to
/api/tasks/ in bulk lists round-robin over the topics:

A. end to end: submit while the workers run; throughput from the first POST to
   the last finish, submit-to-finish latency, order;
B. backlog: submit to paused topics, wait until all is published, resume every
   topic at once; throughput from the resume, hand-off gaps, shares of slice
   time per topic and per member with Jain's index (over the window in which
   every topic still had a backlog), order;
C. hand-off: the same with half the tasks on one topic, so the other
   member is free at each slice end; the gap from a slice's end to the next
   slice's first handler.

CPU seconds per process are measured for each phase. Then, in the same run, a
bare confluent-kafka produce + consume of phase B's envelopes and plain Celery
no-op tasks on the same Redis, and the ratios against the targets. Kafka topics,
tasks and topic rows are deleted at the end.
"""

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_site.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from bench.lib import report  # noqa: E402
from bench.lib.celery_noop import celery_noop_rates  # noqa: E402
from bench.lib.cpu import stack_meter  # noqa: E402
from bench.lib.kafka_bare import bare_kafka_rate  # noqa: E402
from bench.lib.rotation_run import (  # noqa: E402
    FINISHED,
    api_client,
    collect,
    count_in,
    make_topics,
    start_stack,
    submit,
    wait_until,
)
from bench.publish import clean_up  # noqa: E402
from scheduler_site.devstack.celery_processes import CeleryProcesses as Processes  # noqa: E402
from tasks_app.models import Task, TaskStatus, Topic  # noqa: E402
from tasks_app.services.tasks import task_envelope  # noqa: E402
from tasks_app.services.topics import topic_set_paused  # noqa: E402

DEFAULT_TASKS = 100_000
# Phase B's backlog. Its fairness window (until the first topic drains) needs
# ~50 slices at the default slice for a steady Jain index: at 12-22 slices for
# 8 topics the index swung 0.92-0.98. 100,000 tasks held ~50 on the machine of
# 12-01 but 18 on the faster one of 12-02; 250,000 held 46-51 there.
DEFAULT_BACKLOG_TASKS = 250_000
DEFAULT_TOPICS = 8
DEFAULT_WORKERS = 2
DEFAULT_SLICE_MS = 300
DEFAULT_CELERY_TASKS = 5_000
# Phase C runs this fraction of --tasks on its one topic: enough for a dozen or
# more hand-offs at the default slice.
SINGLE_LANE_SHARE = 2
API = "bench (API client+view)"


def parse_args() -> argparse.Namespace:
    """Read the knobs: task count, topics, workers, slice length, baseline size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tasks",
        type=int,
        default=DEFAULT_TASKS,
        help="in A; C runs half as many",
    )
    parser.add_argument(
        "--backlog-tasks",
        type=int,
        default=DEFAULT_BACKLOG_TASKS,
        help="in B, the backlog whose fairness is measured",
    )
    parser.add_argument("--topics", type=int, default=DEFAULT_TOPICS)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--slice-ms", type=int, default=DEFAULT_SLICE_MS)
    parser.add_argument(
        "--celery-tasks",
        type=int,
        default=DEFAULT_CELERY_TASKS,
        help="no-op tasks per round of the plain Celery baseline",
    )
    return parser.parse_args()


class Bench:
    """One run: the stack's processes, a CPU meter and the API client."""

    def __init__(self, args: argparse.Namespace, processes: Processes):
        self.args = args
        self.processes = processes
        self.members = start_stack(processes, args.workers)
        self.meter = stack_meter(processes.pids(), bench=API)
        self.client = api_client()

    def stream(self, topics: list[str]) -> report.Phase:
        """Phase A: submit while the workers run; wait until all finished."""
        self.meter.start()
        started = time.time()
        submit_s = submit(self.client, topics, self.args.tasks)
        wait_until(
            self.processes, count_in(topics, FINISHED), self.args.tasks, "finished"
        )
        cpu = self.meter.stop()
        return report.Phase(*collect(topics), submit_s, started, cpu)

    def backlog(self, topics: list[str], count: int) -> report.Phase:
        """Phases B and C: fill paused topics, resume them all, wait until done."""
        submit_s = submit(self.client, topics, count)
        published = count_in(topics, (TaskStatus.PUBLISHED,))
        wait_until(self.processes, published, count, "published")
        self.meter.start()
        resumed = time.time()
        for topic in topics:
            topic_set_paused(topic=Topic.objects.get(name=topic), paused=False)
        wait_until(self.processes, count_in(topics, FINISHED), count, "finished")
        cpu = self.meter.stop()
        return report.Phase(*collect(topics), submit_s, resumed, cpu)


def bare_records(topics: list[str]) -> list[tuple[str, str, str, str]]:
    """Rebuild the topics' envelopes, in publish order, aimed at fresh topics."""
    rows = Task.objects.filter(topic__name__in=topics).select_related("topic")
    return [
        (
            f"{task.topic.name}-bare",
            task.key,
            task_envelope(task=task, topic_name=task.topic.name),
            str(task.uuid),
        )
        for task in rows.order_by("id")
    ]


def run_phases(
    args: argparse.Namespace, prefix: str, log_dir: Path
) -> tuple[list[report.Phase], list[str], list[str]]:
    """Run phases A, B and C; return them, phase B's topics and the members."""
    stream_topics = make_topics(
        f"{prefix}-a", args.topics, slice_ms=args.slice_ms, paused=False
    )
    backlog_topics = make_topics(
        f"{prefix}-b", args.topics, slice_ms=args.slice_ms, paused=True
    )
    single_topic = make_topics(f"{prefix}-c", 1, slice_ms=args.slice_ms, paused=True)
    processes = Processes(log_dir, dict(os.environ), loglevel="WARNING")
    try:
        bench = Bench(args, processes)
        print(f"{len(bench.members)} rotation workers joined; phase A ...")
        a = bench.stream(stream_topics)
        print("phase B ...")
        b = bench.backlog(backlog_topics, args.backlog_tasks)
        print("phase C ...")
        c = bench.backlog(single_topic, args.tasks // SINGLE_LANE_SHARE)
    finally:
        processes.stop()
    return [a, b, c], backlog_topics, sorted(bench.members)


def run(args: argparse.Namespace, prefix: str, log_dir: Path) -> None:
    """Run the phases, then the baselines, and print everything."""
    phases, backlog_topics, members = run_phases(args, prefix, log_dir)
    print("baselines ...")
    bare = bare_kafka_rate(
        bootstrap=settings.KAFKA_BOOTSTRAP_SERVERS, records=bare_records(backlog_topics)
    )
    celery = celery_noop_rates(
        tasks=args.celery_tasks, workers=args.workers, log_dir=log_dir
    )
    report.everything(args, phases, backlog_topics, members, bare, celery)


def main() -> None:
    """Migrate, run, and delete the run's topics and tasks whatever happened."""
    args = parse_args()
    call_command("migrate", interactive=False, verbosity=0)
    prefix = f"rot-{uuid.uuid4().hex[:8]}"
    log_dir = Path(tempfile.mkdtemp(prefix="bench-rotation-"))
    print(f"logs in {log_dir}")
    try:
        run(args, prefix, log_dir)
    finally:
        clean_up(prefix)


if __name__ == "__main__":
    main()
