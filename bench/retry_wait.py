"""Benchmark what a topic waiting for retries costs the other topics' throughput.

Run against a fresh embedded stack (`make bench` runs it too):
    SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(50))') \
    python -m scheduler_site.devstack exec -- .venv/bin/python bench/retry_wait.py

Starts the publisher, beat and the rotation workers (real Celery processes).
Busy topics get tasks whose handler sleeps (as one calling another service
does), so the workers' time, not the CPU, bounds them. They run three times,
each time on fresh topics created paused, filled, published and resumed
together: alone, beside a retrying topic whose tasks each fail twice (back-off
3 s, then 6 s) so that its lane spends the whole phase waiting for retries, and
alone again (the first phase also warms the stack up). Reported: the busy
topics' throughput beside the retrying topic against the mean of the two runs
alone (1.0: the waits cost the others nothing), and the retrying topic's
slices in the phase (how long they held a worker, why they ended). Topics and
tasks are deleted at the end.
"""

import argparse
import os
import sys
import tempfile
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_site.settings")
# The workers and this process register the benchmark's handlers.
os.environ["SCHEDULER_HANDLER_MODULES"] = "bench.lib.handlers"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from bench.lib import summary  # noqa: E402
from bench.lib.rotation_run import FINISHED, count_in, start_stack, wait_until  # noqa: E402
from bench.publish import clean_up  # noqa: E402
from scheduler_site.devstack.celery_processes import CeleryProcesses as Processes  # noqa: E402
from tasks_app.models import Slice, Task, TaskStatus, Topic  # noqa: E402
from tasks_app.services.tasks import TaskSpec, task_submit_many  # noqa: E402
from tasks_app.services.topics import topic_create, topic_set_paused  # noqa: E402

SLEEP_HANDLER = "bench.lib.handlers.sleep"
FAIL_HANDLER = "bench.lib.handlers.fail_first"
SLICE_MS = 300
RETRY_BACKOFF_MS = 3000
RETRYING_TASKS = 10
CHUNK = 1000


def parse_args() -> argparse.Namespace:
    """Read the knobs: busy topics, their tasks and sleep, workers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=1500)
    parser.add_argument("--sleep-ms", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    return parser.parse_args()


def create(name: str, handler: str, messages: list[dict]) -> Topic:
    """Create a paused topic and submit its messages."""
    topic = topic_create(
        name=name, handler=handler, slice_ms=SLICE_MS, paused=True,
        retry_backoff_ms=RETRY_BACKOFF_MS, max_attempts=3,
    )  # fmt: skip
    for first in range(0, len(messages), CHUNK):
        chunk = messages[first : first + CHUNK]
        specs = [TaskSpec(topic=name, message=m) for m in chunk]
        task_submit_many(submitted_by=None, specs=specs)
    return topic


def phase(
    args: argparse.Namespace, prefix: str, processes: Processes, *, retrying: bool
) -> float:
    """Run the busy topics (and the retrying one, if asked) from one resume;
    return the busy topics' tasks/s from their first start to their last end."""
    per_topic = args.tasks // args.topics
    busy = [f"{prefix}-busy-{n}" for n in range(args.topics)]
    topics = [
        create(name, SLEEP_HANDLER, [{"sleep_ms": args.sleep_ms}] * per_topic)
        for name in busy
    ]
    waiting = [{"fail_attempts": 2}] * RETRYING_TASKS
    if retrying:
        topics.append(create(f"{prefix}-retrying", FAIL_HANDLER, waiting))
    names = [topic.name for topic in topics]
    expected = per_topic * args.topics + (RETRYING_TASKS if retrying else 0)
    wait_until(
        processes, count_in(names, (TaskStatus.PUBLISHED,)), expected, "published"
    )
    for topic in topics:
        topic_set_paused(topic=topic, paused=False)
    wait_until(processes, count_in(busy, FINISHED), per_topic * args.topics, "run")
    rows = Task.objects.filter(topic__name__in=busy).values_list(
        "started_at", "finished_at"
    )
    # Every busy task finished, so each has both times.
    first = min(started for started, _ in rows if started)
    last = max(finished for _, finished in rows if finished)
    for topic in topics:
        topic_set_paused(topic=topic, paused=True)
    if retrying:
        report_retrying(f"{prefix}-retrying", first, last)
    return per_topic * args.topics / (last - first).total_seconds()


def report_retrying(name: str, first: datetime, last: datetime) -> None:
    """Print how long the retrying topic's slices held a worker in the phase."""
    slices = Slice.objects.filter(
        topic__name=name, started_at__lte=last, ended_at__gte=first
    )
    held = sum((s.ended_at - s.started_at).total_seconds() for s in slices)
    reasons = Counter(s.end_reason for s in slices)
    print(
        f"  the retrying topic's lane: {len(slices)} slices held a worker "
        f"{held:.2f} s in the phase; ended {dict(reasons)}"
    )
    summary.add("retry_wait", "retrying lane held a worker", held, "s")


def main() -> None:
    """Migrate, run both phases, report, delete what the run made."""
    args = parse_args()
    call_command("migrate", interactive=False, verbosity=0)
    prefix = f"rw-{uuid.uuid4().hex[:8]}"
    log_dir = Path(tempfile.mkdtemp(prefix="bench-retry-wait-"))
    print(f"logs in {log_dir}")
    processes = Processes(log_dir, dict(os.environ))
    try:
        start_stack(processes, args.workers)
        before = phase(args, f"{prefix}-a", processes, retrying=False)
        print(f"busy topics alone: {before:.1f} tasks/s")
        beside = phase(args, f"{prefix}-b", processes, retrying=True)
        print(f"busy topics beside a retrying topic: {beside:.1f} tasks/s")
        after = phase(args, f"{prefix}-c", processes, retrying=False)
        print(f"busy topics alone again: {after:.1f} tasks/s")
        alone = (before + after) / 2
        ratio = beside / alone
        print(
            f"  {ratio:.2f} of alone ({args.tasks} tasks of {args.sleep_ms} ms over "
            f"{args.topics} topics, {args.workers} workers, slice {SLICE_MS} ms)"
        )
        summary.add(
            "retry_wait",
            "busy topics beside retries / alone",
            ratio,
            "x",
            detail=f"{beside:.1f} vs {before:.1f} and {after:.1f} tasks/s",
        )
    finally:
        processes.stop()
        clean_up(prefix)


if __name__ == "__main__":
    main()
