"""Benchmark one lane's throughput with 20 ms handlers at several key_concurrency.

Run against a fresh embedded stack:
    SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(50))') \
    python -m scheduler_site.devstack exec -- .venv/bin/python bench/key_concurrency.py

Starts the publisher, beat and the rotation workers (real Celery processes).
For each key_concurrency (1, 4, 16 by default) it creates a paused one-partition
topic (one lane) whose handler sleeps --sleep-ms, submits --tasks tasks over
--keys keys, waits until all are published, resumes the topic and waits until
all finished. Reported per setting: tasks/s from the first handler's start to
the last one's end, the ratio to key_concurrency 1 and to the ideal
(key_concurrency x 1000 / sleep-ms), and whether each key ran in order without
overlap. Topics and tasks are deleted at the end.
"""

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_site.settings")
# The workers and this process register the benchmark's sleeping handler.
os.environ["SCHEDULER_HANDLER_MODULES"] = "bench.lib.handlers"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from bench.lib.rotation_run import FINISHED, count_in, start_stack, wait_until  # noqa: E402
from bench.publish import clean_up  # noqa: E402
from scheduler_site.devstack.celery_processes import CeleryProcesses as Processes  # noqa: E402
from tasks_app.models import Task, TaskStatus  # noqa: E402
from tasks_app.services.tasks import TaskSpec, task_submit_many  # noqa: E402
from tasks_app.services.topics import topic_create, topic_set_paused  # noqa: E402

SLEEP_HANDLER = "bench.lib.handlers.sleep"
SLICE_MS = 1000
CHUNK = 1000


def parse_args() -> argparse.Namespace:
    """Read the knobs: the settings to compare, tasks, keys, sleep, workers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--keys", type=int, default=32)
    parser.add_argument("--sleep-ms", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    return parser.parse_args()


def run_one(args: argparse.Namespace, topic: str, processes: Processes) -> float:
    """Fill a paused lane, resume it, wait until it drained; return tasks/s."""
    created = topic_create(
        name=topic, handler=SLEEP_HANDLER, slice_ms=SLICE_MS, paused=True,
        key_concurrency=int(topic.rsplit("-", 1)[1]),
    )  # fmt: skip
    for first in range(0, args.tasks, CHUNK):
        message = {"sleep_ms": args.sleep_ms}
        specs = [
            TaskSpec(topic=topic, message=message, key=f"k{n % args.keys}")
            for n in range(first, min(first + CHUNK, args.tasks))
        ]
        task_submit_many(submitted_by=None, specs=specs)
    wait_until(
        processes, count_in([topic], (TaskStatus.PUBLISHED,)), args.tasks, "published"
    )
    topic_set_paused(topic=created, paused=False)
    wait_until(processes, count_in([topic], FINISHED), args.tasks, "finished")
    rows = Task.objects.filter(topic__name=topic).values_list(
        "started_at", "finished_at"
    )
    first_start = min(started.timestamp() for started, _ in rows if started)
    last_end = max(finished.timestamp() for _, finished in rows if finished)
    return args.tasks / (last_end - first_start)


def keys_in_order(topic: str) -> bool:
    """Tell whether each key's tasks ran in offset order, one after the other."""
    rows = Task.objects.filter(topic__name=topic).order_by("key", "offset")
    previous: dict[str, datetime] = {}
    for key, started, finished in rows.values_list("key", "started_at", "finished_at"):
        if started is None or finished is None:
            return False  # every task finished, so each has both
        if key in previous and started < previous[key]:
            return False
        previous[key] = finished
    return True


def main() -> None:
    """Migrate, run each setting on its own lane, report, delete what it made."""
    args = parse_args()
    call_command("migrate", interactive=False, verbosity=0)
    prefix = f"kc-{uuid.uuid4().hex[:8]}"
    log_dir = Path(tempfile.mkdtemp(prefix="bench-key-concurrency-"))
    print(f"logs in {log_dir}")
    processes = Processes(log_dir, dict(os.environ))
    try:
        start_stack(processes, args.workers)
        rates = {}
        for n in args.concurrency:
            topic = f"{prefix}-{n}"
            started = time.monotonic()
            rates[n] = run_one(args, topic, processes)
            ordered = keys_in_order(topic)
            print(
                f"key_concurrency {n:>3}: {rates[n]:7.1f} tasks/s "
                f"(x{rates[n] / rates[args.concurrency[0]]:.2f} of key_concurrency "
                f"{args.concurrency[0]}; {rates[n] / (n * 1000 / args.sleep_ms):.0%} "
                f"of the ideal {n * 1000 / args.sleep_ms:.0f}/s); keys in order: "
                f"{ordered}; {time.monotonic() - started:.0f} s with set-up",
                flush=True,
            )
        print(
            f"{args.tasks} tasks of {args.sleep_ms} ms over {args.keys} keys, one "
            f"lane, {args.workers} workers, slice {SLICE_MS} ms"
        )
    finally:
        processes.stop()
        clean_up(prefix)


if __name__ == "__main__":
    main()
