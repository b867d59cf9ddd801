"""Benchmark a topic's global rate limit on several workers, beside an unlimited topic.

Run against a fresh embedded stack:
    SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(50))') \
    python -m scheduler_site.devstack exec -- .venv/bin/python bench/rate_limit.py

Starts the publisher, beat and the rotation workers (real Celery processes),
creates two paused topics with the no-op handler: one limited to --rate tasks/s
over three partitions (three lanes sharing one bucket), one unlimited with a
large backlog. Once everything is published both are resumed at once, and after
--seconds both are paused. Reported: the limited topic's achieved rate over the
window (with and without its first burst), its error against the limit, its
slices and why they ended, and the unlimited topic's throughput in the same
window. Topics and tasks are deleted at the end.
"""

import argparse
import math
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_site.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from bench.lib.rotation_run import count_in, start_stack, wait_until  # noqa: E402
from bench.publish import clean_up  # noqa: E402
from scheduler_site.devstack.celery_processes import CeleryProcesses as Processes  # noqa: E402
from tasks_app.models import Slice, Task, TaskStatus  # noqa: E402
from tasks_app.services.tasks import TaskSpec, task_submit_many  # noqa: E402
from tasks_app.services.topics import topic_create, topic_set_paused  # noqa: E402

NOOP_HANDLER = "tasks_app.handlers.noop"
SLICE_MS = 300
LIMITED_PARTITIONS = 3
# The unlimited topic's backlog: more than the workers run in the window.
UNLIMITED_TASKS = 60_000
CHUNK = 1000


def parse_args() -> argparse.Namespace:
    """Read the knobs: the limit, the window, the number of workers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="tasks per second")
    parser.add_argument("--burst", type=int, default=None, help="default: 1 s worth")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=3)
    return parser.parse_args()


def submit(topic: str, count: int, keys: int) -> None:
    """Submit `count` tasks over `keys` keys, so they spread over the partitions."""
    for first in range(0, count, CHUNK):
        specs = [
            TaskSpec(topic=topic, message={"n": n}, key=f"k{n % keys}")
            for n in range(first, min(first + CHUNK, count))
        ]
        task_submit_many(submitted_by=None, specs=specs)


def started_in(topic: str, start: float, end: float) -> list[float]:
    """Return the start times (epoch s) of the topic's handlers within [start, end]."""
    times = [
        t.timestamp()
        for t in Task.objects.filter(topic__name=topic).values_list(
            "started_at", flat=True
        )
        if t is not None
    ]
    return sorted(t for t in times if start <= t <= end)


def held_s(topic: str, start: float, end: float) -> float:
    """Sum the time the topic's slices spent inside [start, end] (epoch s)."""
    total = 0.0
    for began, ended in Slice.objects.filter(topic__name=topic).values_list(
        "started_at", "ended_at"
    ):
        total += max(0.0, min(ended.timestamp(), end) - max(began.timestamp(), start))
    return total


def run(args: argparse.Namespace, prefix: str, processes: Processes) -> None:
    """Fill both topics while paused, resume them together, measure the window."""
    start_stack(processes, args.workers)
    limited, free = f"{prefix}-limited", f"{prefix}-free"
    burst = args.burst or max(1, math.ceil(args.rate))
    topics = [
        topic_create(
            name=limited, handler=NOOP_HANDLER, slice_ms=SLICE_MS, paused=True,
            partitions=LIMITED_PARTITIONS, rate_limit=args.rate, rate_burst=burst,
        ),
        topic_create(name=free, handler=NOOP_HANDLER, slice_ms=SLICE_MS, paused=True),
    ]  # fmt: skip
    limited_tasks = int(args.rate * args.seconds * 1.5) + burst
    submit(limited, limited_tasks, keys=LIMITED_PARTITIONS * 3)
    submit(free, UNLIMITED_TASKS, keys=1)
    total = limited_tasks + UNLIMITED_TASKS
    published = count_in([limited, free], (TaskStatus.PUBLISHED,))
    wait_until(processes, published, total, "published")

    resumed = time.time()
    for topic in topics:
        topic_set_paused(topic=topic, paused=False)
    time.sleep(args.seconds + 1.0)
    for topic in topics:
        topic_set_paused(topic=topic, paused=True)
    time.sleep(1.0)
    report(args, limited, free, resumed, burst)


def report(
    args: argparse.Namespace, limited: str, free: str, resumed: float, burst: int
) -> None:
    """Print the achieved rates over the window from the limited topic's first run."""
    first = started_in(limited, resumed, resumed + 3600)[0]
    end = first + args.seconds
    limited_runs = started_in(limited, first, end)
    free_runs = started_in(free, first, end)
    steady = started_in(limited, first + 5.0, end)
    reasons = Counter(
        Slice.objects.filter(
            topic__name=limited, started_at__gte=datetime.fromtimestamp(first, UTC)
        ).values_list("end_reason", flat=True)
    )
    achieved = len(limited_runs) / args.seconds
    print(f"limit {args.rate:g} tasks/s, burst {burst}, {args.workers} workers, ")
    print(f"  {LIMITED_PARTITIONS} lanes on one bucket, window {args.seconds:g} s")
    print(f"limited topic: {len(limited_runs)} tasks in the window")
    print(f"  achieved   {achieved:.2f} tasks/s ({achieved / args.rate - 1:+.1%})")
    without_burst = (len(limited_runs) - burst) / args.seconds
    print(f"  minus the first burst {without_burst:.2f} tasks/s")
    print(f"  from 5 s on {len(steady) / (args.seconds - 5.0):.2f} tasks/s")
    print(f"  slices by end reason: {dict(reasons)}")
    busy_s = max(free_runs[-1] - free_runs[0], 1e-3) if free_runs else 1.0
    print(f"unlimited topic: {len(free_runs)} of {UNLIMITED_TASKS} in the window,")
    print(f"  {len(free_runs) / busy_s:.0f} tasks/s while it had a backlog;")
    held = held_s(free, first, free_runs[-1] if free_runs else end)
    print(f"  its lane was held {held / busy_s:.0%} of that time (one holder at most)")


def main() -> None:
    """Migrate, run, and delete the run's topics and tasks whatever happened."""
    args = parse_args()
    call_command("migrate", interactive=False, verbosity=0)
    prefix = f"rl-{uuid.uuid4().hex[:8]}"
    log_dir = Path(tempfile.mkdtemp(prefix="bench-rate-limit-"))
    print(f"logs in {log_dir}")
    processes = Processes(log_dir, dict(os.environ))
    try:
        run(args, prefix, processes)
    finally:
        processes.stop()
        clean_up(prefix)


if __name__ == "__main__":
    main()
