"""Plain Celery no-op tasks on the stack's Redis: the baseline bench/rotation.py beats.

A bare Celery app (no Django, default settings apart from ignoring results) on
REDIS_URL with its own queue. Each task counts itself with one INCR, so the
sender sees completions without a result backend.
"""

import functools
import os
import time
from pathlib import Path

import redis
from celery import Celery
from celery.signals import worker_ready

from scheduler_site.devstack.celery_processes import CeleryProcesses as Processes

QUEUE = "bench-noop"
DONE_KEY = "bench:noop:done"
READY_KEY = "bench:noop:ready"
READY_TIMEOUT_S = 60.0
ROUNDS = 3
WATCH_S = 0.01

# Not the current app: in the bench process the scheduler's app must stay
# current, or its on-commit publisher nudges would be routed by this one.
app = Celery("bench_noop", broker=os.environ.get("REDIS_URL"), set_as_current=False)
app.conf.update(task_ignore_result=True, task_default_queue=QUEUE)


@functools.cache
def _redis() -> redis.Redis:
    """One client per process: a connection per task would cost more than Celery."""
    return redis.Redis.from_url(os.environ["REDIS_URL"])


@app.task(name="bench.noop")
def noop() -> None:
    """Do nothing but count the completion."""
    _redis().incr(DONE_KEY)


@worker_ready.connect
def _ready(**_: object) -> None:
    _redis().incr(READY_KEY)


def _wait_count(client: redis.Redis, key: str, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while int(client.get(key) or 0) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"plain Celery: {key} did not reach {count} in time")
        time.sleep(WATCH_S)


def _round(client: redis.Redis, tasks: int) -> float:
    """Send `tasks` no-ops and return completions/s from first send to last done."""
    client.set(DONE_KEY, 0)
    started = time.monotonic()
    for _ in range(tasks):
        noop.apply_async()
    _wait_count(client, DONE_KEY, tasks, timeout_s=max(120.0, tasks / 50))
    return tasks / (time.monotonic() - started)


def celery_noop_rates(
    *, tasks: int, workers: int, log_dir: Path, rounds: int = ROUNDS
) -> list[float]:
    """Start `workers` solo workers and time `rounds` rounds of `tasks` no-ops.

    Return each round's completions/s; the workers are up and waiting before
    the first send. The rate swings between rounds on a shared machine, so the
    caller compares against the best.
    """
    client = _redis()
    client.delete(DONE_KEY, READY_KEY)
    processes = Processes(log_dir, dict(os.environ), loglevel="WARNING")
    try:
        for n in range(workers):
            processes.worker(f"noop{n + 1}", QUEUE, app="bench.lib.celery_noop")
        _wait_count(client, READY_KEY, workers, READY_TIMEOUT_S)
        return [_round(client, tasks) for _ in range(rounds)]
    finally:
        processes.stop()
        client.delete(DONE_KEY, READY_KEY, QUEUE)
