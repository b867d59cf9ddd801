"""Run a million tasks through the whole pipeline and check it holds up at scale.

Not part of `make bench` (it takes a quiet machine for tens of minutes); run it
with `make bench-million` (MILLION_TASKS=30000 for a short version), or alone:
    SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(50))') \
    python -m scheduler_site.devstack exec -- .venv/bin/python bench/scale/million.py

On 8 fresh topics with the no-op handler, with the publisher, beat and two
rotation workers running (real Celery processes), N tasks are POSTed to
/api/tasks/ in lists of 1,000 with `Prefer: return=minimal` by submitter
threads (in-process DRF client) until every task has finished. Then it reports:

- throughput over time: finishes per interval (from the tasks' finished_at),
  and the rate of the last 10% of tasks by finish order against the first 10%;
- each process's CPU a task in those first and last 10% (read with the
  progress, every second), and its share of all processes': if the rate
  falls, whose cost grew (on a shared host the machine's speed can change
  within a run, and every process's CPU a task with it, but not the shares);
  and the CPU a fixed piece of work took meanwhile (a hint of the machine's
  speed, not a reliable one: docs/benchmarks.md);
- the RSS of each worker and the publisher, sampled every few seconds; "after
  warm-up" starts when the first 10% of the tasks had finished, and the
  largest deviation from the first sample after that is given in %;
- order held per topic (bench/rotation.py's definition), lost = submitted -
  finished;
- the operators' reads (bench/lib/reads.py) with every row present;
- with --purge-old N: N tasks finished two days ago are stored first and the
  workers run with a retention of one day, so beat's periodic purge deletes
  them while the run goes on (every --purge-interval-s, 2 s at most each time,
  on the publisher's queue): run with and without it to see what the purge
  costs the throughput;
- table and index sizes at the end, after purging every finished task with the
  retention purge (services/retention.py, what `manage.py tasks_purge --days 0`
  runs), and after a plain VACUUM.

The run's Kafka topics, tasks and topic rows are deleted at the end.
"""

import argparse
import math
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_site.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, connections  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from bench.lib import figures, summary  # noqa: E402
from bench.lib.cpu import BROKER, CpuTimeline, stack_meter  # noqa: E402
from bench.lib.memory import RssSampler  # noqa: E402
from bench.lib.reads import (  # noqa: E402
    TableSize,
    print_reads,
    print_sizes,
    read_latencies,
    sizes,
    vacuum,
)
from bench.lib.rotation_run import (  # noqa: E402
    FINISHED,
    api_client,
    count_in,
    make_topics,
    start_stack,
    submit,
    wait_until,
)
from bench.million_reads import fill  # noqa: E402
from bench.publish import clean_up  # noqa: E402
from scheduler_site.devstack.celery_processes import CeleryProcesses as Processes  # noqa: E402
from tasks_app.models import Task, Topic  # noqa: E402
from tasks_app.services.retention import (  # noqa: E402
    PURGED_STATUSES,
    slices_purge,
    task_counts_fold,
    tasks_purge,
)
from tasks_app.services.sql import sql  # noqa: E402

BENCH = "million"
DEFAULT_TASKS = 1_000_000
DEFAULT_TOPICS = 8
DEFAULT_WORKERS = 2
DEFAULT_SUBMITTERS = 2
DEFAULT_INTERVAL_S = 10.0
DEFAULT_RSS_EVERY_S = 3.0
# Each process's CPU is read with the progress, at most this often: a sample
# reads some 30 processes (PostgreSQL's backends), a few milliseconds.
CPU_EVERY_S = 1.0
API = "bench (API)"
ALL = "all processes"
# The first and last tenth of the tasks, by finish order, are compared; memory
# counts as warmed up once the first tenth has finished.
SHARE = 0.1
TARGET_RATE_RATIO = 0.9  # "does not fall", within the RSS target's 10%
TARGET_RSS_PCT = 10.0
TARGET_READ_MS = 100.0
PROGRESS_EVERY_S = 10.0
# Per topic, by id: every task succeeded, and each started no earlier than the
# one before it finished (bench/lib/figures.order_held, in SQL for a million).
_ORDER = """
SELECT count(*) FILTER (WHERE status <> 'succeeded')
     + count(*) FILTER (WHERE started_at < previous_finished)
FROM (
    SELECT status, started_at,
           lag(finished_at) OVER (PARTITION BY topic_id ORDER BY id)
               AS previous_finished
    FROM {task} WHERE topic_id = ANY(%s)
) AS ordered
"""
_FINISH_TIMES = """
SELECT extract(epoch FROM finished_at) FROM {task}
WHERE topic_id = ANY(%s) AND finished_at IS NOT NULL ORDER BY finished_at
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=DEFAULT_TASKS)
    parser.add_argument("--topics", type=int, default=DEFAULT_TOPICS)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument(
        "--slice-ms", type=int, default=settings.SCHEDULER_DEFAULT_SLICE_MS
    )
    parser.add_argument("--submitters", type=int, default=DEFAULT_SUBMITTERS)
    parser.add_argument(
        "--interval-s",
        type=float,
        default=DEFAULT_INTERVAL_S,
        help="width of the throughput-over-time intervals",
    )
    parser.add_argument("--rss-every-s", type=float, default=DEFAULT_RSS_EVERY_S)
    parser.add_argument(
        "--purge-old",
        type=int,
        default=0,
        help="old finished tasks for beat's retention purge to delete during the run",
    )
    parser.add_argument(
        "--purge-interval-s",
        type=int,
        default=settings.SCHEDULER_PURGE_INTERVAL_S,
        help="beat's purge interval during the run (with --purge-old)",
    )
    args = parser.parse_args()
    chunk = settings.SCHEDULER_MAX_BULK_TASKS
    if args.tasks < chunk * args.submitters or args.tasks % chunk:
        parser.error(f"--tasks must be a multiple of {chunk}, {chunk} per submitter")
    return args


@dataclass
class Run:
    """What the pipeline run left to report on."""

    topics: list[str]
    topic_ids: list[int]
    submitted: int
    submit_s: float
    started: float  # epoch s of the first POST
    rss: dict[str, list[tuple[float, int]]]
    cpu: CpuTimeline
    old_stored: int  # --purge-old
    old_purged: int  # of those, by beat's purge during the run


class Submitters:
    """Threads POSTing disjoint ranges of the tasks, each with its own client and
    database connection; a failure is raised again by `check()`. `stop()` ends
    them early: a run that stalled deletes its topics only once no thread is
    still POSTing to them."""

    def __init__(self, topics: list[str], tasks: int, threads: int):
        chunk = settings.SCHEDULER_MAX_BULK_TASKS
        chunks = tasks // chunk
        self.ranges = [
            (chunks * n // threads * chunk, chunks * (n + 1) // threads * chunk)
            for n in range(threads)
        ]
        self.topics = topics
        self.clients = [api_client() for _ in range(threads)]
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="submit")
        self.futures: list[Future[float]] = []
        self.stopping = threading.Event()

    def start(self) -> None:
        for client, (first, end) in zip(self.clients, self.ranges, strict=True):
            self.futures.append(self.pool.submit(self._post, client, first, end))

    def _post(self, client: APIClient, first: int, end: int) -> float:
        try:
            return submit(
                client, self.topics, end - first, start=first, stop=self.stopping
            )
        finally:
            connections.close_all()

    def check(self) -> None:
        for future in self.futures:
            if future.done() and future.exception() is not None:
                raise RuntimeError("a submitter failed") from future.exception()

    def seconds(self) -> float:
        """Wait for every submitter; return the longest one's seconds."""
        self.pool.shutdown()
        return max(future.result() for future in self.futures)

    def stop(self) -> None:
        """Have every thread stop before its next list; wait until they have."""
        self.stopping.set()
        self.pool.shutdown()


def finished_counter(
    topics: list[str], submitters: Submitters, tasks: int, cpu: CpuTimeline
) -> Callable[[], int]:
    """Return a cheap counter of finished tasks (the kept counts, not a scan of
    a million rows) that fails if a submitter did, prints progress and reads
    the processes' CPU."""
    count = count_in(topics, FINISHED)
    last_print = [time.monotonic()]

    def finished() -> int:
        submitters.check()
        cpu.read()
        done = count()
        if time.monotonic() - last_print[0] >= PROGRESS_EVERY_S:
            last_print[0] = time.monotonic()
            print(f"  {time.strftime('%H:%M:%S')} {done:,} of {tasks:,} finished")
        return done

    return finished


def old_tasks(args: argparse.Namespace, prefix: str) -> tuple[dict[str, str], int]:
    """Store --purge-old finished tasks dated two days back; return the workers'
    environment (a retention of one day, beat purging every --purge-interval-s)
    and how many tasks were stored."""
    env = dict(os.environ)
    if not args.purge_old:
        return env, 0
    started = time.monotonic()
    fill(args.purge_old, prefix=f"{prefix}-old")
    stored = Task.objects.filter(topic__name__startswith=f"{prefix}-old").count()
    print(f"{stored:,} old tasks stored in {time.monotonic() - started:.1f} s")
    env["SCHEDULER_RETENTION_DAYS"] = "1"
    env["SCHEDULER_PURGE_INTERVAL_S"] = str(args.purge_interval_s)
    return env, stored


def run_pipeline(args: argparse.Namespace, prefix: str, log_dir: Path) -> Run:
    """Submit every task while the stack runs; return once all have finished."""
    env, old = old_tasks(args, prefix)
    topics = make_topics(prefix, args.topics, slice_ms=args.slice_ms, paused=False)
    processes = Processes(log_dir, env, loglevel="WARNING")
    submitters = Submitters(topics, args.tasks, args.submitters)
    try:
        members = start_stack(processes, args.workers)
        watched = {"publisher": processes.pids()["publisher"]}
        watched.update({member.split("@")[0]: pid for member, pid in members.items()})
        sampler = RssSampler(watched, every_s=args.rss_every_s)
        cpu = CpuTimeline(stack_meter(processes.pids(), bench=API), every_s=CPU_EVERY_S)
        print(f"{len(members)} rotation workers joined; submitting {args.tasks:,} ...")
        sampler.start()
        cpu.read()
        started = time.time()
        submitters.start()
        counter = finished_counter(topics, submitters, args.tasks, cpu)
        wait_until(processes, counter, args.tasks, "finished")
        submit_s = submitters.seconds()
        sampler.stop()
        cpu.read(always=True)  # the end, too
    finally:
        submitters.stop()
        processes.stop()
    ids = list(Topic.objects.filter(name__in=topics).values_list("id", flat=True))
    old_left = Task.objects.filter(topic__name__startswith=f"{prefix}-old").count()
    return Run(
        topics,
        ids,
        args.tasks,
        submit_s,
        started,
        sampler.samples,
        cpu,
        old,
        old - old_left,
    )


def _scalar(statement: str, topic_ids: list[int]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql(statement), [topic_ids])
        return cursor.fetchone()[0]


def finish_times(topic_ids: list[int]) -> list[float]:
    with connection.cursor() as cursor:
        cursor.execute(sql(_FINISH_TIMES), [topic_ids])
        return [float(at) for (at,) in cursor.fetchall()]


def _line(label: str, value: str) -> None:
    print(f"  {label:<52} {value}")


def _compare(label: str, finished: list[float]) -> None:
    """Print and keep the first and last 10% of `finished` and their ratio."""
    first, last = figures.first_last_rates(finished, SHARE)
    ratio = last / first
    _line(f"{label}: first 10% by finish order", f"{first:,.0f} tasks/s")
    _line(f"{label}: last 10%", f"{last:,.0f} tasks/s")
    _line(f"{label}: last / first", f"{ratio:.2f}")
    summary.add(
        BENCH,
        f"{label}: last / first 10%",
        ratio,
        "x",
        target=f">= {TARGET_RATE_RATIO}",
        met=ratio >= TARGET_RATE_RATIO,
        detail=f"{first:,.0f} -> {last:,.0f} tasks/s",
    )


def report_throughput(run: Run, finished: list[float], interval_s: float) -> float:
    """Print and keep the rates; return the moment warm-up ended (epoch s)."""
    overall = len(finished) / (finished[-1] - run.started)
    submitted_at = run.started + run.submit_s
    series = figures.per_interval(finished, run.started, interval_s)
    print(f"\nThroughput, {run.submitted:,} tasks, {len(run.topics)} topics")
    _line("API submit", f"{run.submit_s:.1f} s = {run.submitted / run.submit_s:,.0f}/s")
    _line("first POST -> last finish", f"{overall:,.0f} tasks/s")
    summary.add(BENCH, "end to end", overall, "tasks/s")
    summary.add(BENCH, "API submit", run.submitted / run.submit_s, "tasks/s")
    _compare("all tasks", finished)
    # After the last POST the workers drain what is left without the API on
    # the CPUs; this comparison leaves that out.
    _compare("while submitting", [at for at in finished if at <= submitted_at])
    print(f"  finished per {interval_s:g} s from the first POST (tasks/s):")
    for n, count in enumerate(series):
        print(f"    {n * interval_s:>7.0f} s {count / interval_s:>9,.0f}")
    summary.attach(
        "finished_per_interval",
        {
            "interval_s": interval_s,
            "last_post_since_first_post_s": run.submit_s,
            "since_first_post": series,
        },
    )
    return finished[int(len(finished) * SHARE) - 1]


def report_memory(run: Run, warm_at: float) -> None:
    """Print and keep each process's RSS after warm-up and its largest drift."""
    print(f"\nRSS after warm-up (from {warm_at - run.started:.0f} s, first 10% done)")
    for name, samples in run.rss.items():
        warm, drift = figures.rss_drift(samples, warm_at)
        peak = max(rss for _, rss in samples)
        _line(
            name,
            f"{warm / 2**20:,.1f} MiB, max deviation {drift:.1f}% "
            f"(peak {peak / 2**20:,.1f} MiB, {len(samples)} samples)",
        )
        summary.add(
            BENCH,
            f"{name} RSS drift after warm-up",
            drift,
            "%",
            target=f"<= {TARGET_RSS_PCT:g}%",
            met=drift <= TARGET_RSS_PCT if not math.isnan(drift) else None,
            detail=f"warm {warm / 2**20:.1f} MiB",
        )
    summary.attach(
        "rss_bytes",
        {
            "warm_up_ends_since_first_post_s": warm_at - run.started,
            "samples_since_first_post": {
                name: [(round(at - run.started, 1), rss) for at, rss in samples]
                for name, samples in run.rss.items()
            },
        },
    )


def report_cpu(run: Run, finished: list[float]) -> None:
    """Print and keep each process's CPU a task in the first and the last 10% of
    the tasks by finish order: if the rate falls, whose cost grew."""
    count = int(len(finished) * SHARE)
    first = run.cpu.per_task(finished, finished[0], finished[count - 1])
    last = run.cpu.per_task(finished, finished[-count], finished[-1])
    shifted, points = figures.largest_share_shift(first, last)
    share_before, share_after = figures.shares(first), figures.shares(last)
    first[ALL], last[ALL] = sum(first.values()), sum(last.values())
    print(f"\nCPU a task, first and last {SHARE:.0%} of the tasks by finish order")
    for name in first:
        ratio = last[name] / first[name] if first[name] else math.nan
        share = (
            f", {share_before[name]:.1%} -> {share_after[name]:.1%} of all"
            if name != ALL
            else ""
        )
        _line(
            name,
            f"{first[name] * 1e3:.3f} -> {last[name] * 1e3:.3f} ms ({ratio:.2f}x)"
            + share,
        )
        if name in (ALL, BROKER):
            summary.add(
                BENCH,
                f"CPU a task, {name}: last / first 10%",
                ratio,
                "x",
                detail=f"{first[name] * 1e3:.3f} -> {last[name] * 1e3:.3f} ms",
            )
    _line("largest shift in a share of the CPU", f"{shifted}, {points:+.1f} points")
    summary.add(
        BENCH,
        "largest shift in a process's share of the CPU, first -> last 10%",
        points,
        "points",
        detail=shifted,
    )
    summary.attach("cpu_ms_a_task", {"first": first, "last": last})
    report_machine_speed(run, finished, count, last[ALL] / first[ALL])


def report_machine_speed(
    run: Run, finished: list[float], count: int, all_ratio: float
) -> None:
    """Print how long a fixed piece of work took in the first and the last 10%,
    and every process's CPU a task against it: a hint of the machine's speed,
    not a measure (its time also depends on how busy the machine is:
    docs/benchmarks.md, "Throughput over time, 12-02 evening")."""
    before = run.cpu.fixed_work_s(finished[0], finished[count - 1])
    after = run.cpu.fixed_work_s(finished[-count], finished[-1])
    ratio = after / before
    against = all_ratio / ratio
    detail = f"{before * 1e3:.2f} -> {after * 1e3:.2f} ms"
    _line("fixed work (a hint of the machine's speed)", f"{detail} ({ratio:.2f}x)")
    _line("all processes, against the fixed work", f"{against:.2f}x")
    summary.add(BENCH, "fixed work's CPU: last / first 10%", ratio, "x", detail=detail)
    summary.add(
        BENCH,
        "CPU a task, all processes, against the fixed work: last / first 10%",
        against,
        "x",
    )
    summary.attach("fixed_work_s", run.cpu.fixed_work)


def report_outcome(run: Run, finished: int) -> None:
    lost = run.submitted - finished
    held = _scalar(_ORDER, run.topic_ids) == 0
    print()
    _line("submitted / finished / lost", f"{run.submitted:,} / {finished:,} / {lost:,}")
    _line("order held per topic", "yes" if held else "NO")
    summary.add(BENCH, "lost", lost, "tasks", target="0", met=lost == 0)
    summary.add(BENCH, "order held", float(held), "", target="1", met=held)
    if run.old_stored:
        _line("old tasks purged by beat during the run", f"{run.old_purged:,}")
        summary.add(
            BENCH,
            "old tasks purged by beat during the run",
            run.old_purged,
            "tasks",
            detail=f"of {run.old_stored:,}",
        )


def report_reads(run: Run) -> None:
    print(f"\nReads with {run.submitted:,} tasks present")
    latencies = read_latencies(run.topics[len(run.topics) // 2])
    print_reads(latencies)
    for name, ms in latencies.items():
        summary.add(
            BENCH,
            name,
            ms,
            "ms",
            target=f"< {TARGET_READ_MS:g}",
            met=ms < TARGET_READ_MS,
        )


def sizes_kept(stage: str, measured: list[TableSize]) -> None:
    print_sizes(f"\nSizes {stage}", measured)
    for size in measured:
        name = f"{size.table.removeprefix('tasks_app_')} total size, {stage}"
        summary.add(BENCH, name, size.total / 2**20, "MiB")
    summary.attach(
        f"sizes {stage}",
        {
            s.table: {"total": s.total, "heap": s.heap, "indexes": s.indexes}
            for s in measured
        },
    )


def purge_everything() -> None:
    """Purge every finished task, as the retention purge does with a retention of
    zero (`manage.py tasks_purge --days 0`), then every slice record."""
    task_counts_fold()
    started = time.monotonic()
    batch = settings.SCHEDULER_PURGE_BATCH
    purged = tasks_purge(
        older_than=timedelta(0),
        batch=batch,
        budget_s=math.inf,
        statuses=PURGED_STATUSES,
    )
    seconds = time.monotonic() - started
    slices = slices_purge(older_than=timedelta(0), batch=batch, budget_s=math.inf)
    task_counts_fold()
    print(
        f"\nPurged {purged:,} tasks with their history in {seconds:.1f} s "
        f"= {purged / seconds:,.0f} tasks/s (batches of {batch:,}); {slices:,} slices"
    )
    summary.add(BENCH, "retention purge", purged / seconds, "tasks/s")


def report(args: argparse.Namespace, run: Run) -> None:
    finished = finish_times(run.topic_ids)
    warm_at = report_throughput(run, finished, args.interval_s)
    report_cpu(run, finished)
    report_memory(run, warm_at)
    report_outcome(run, len(finished))
    report_reads(run)
    sizes_kept("at the end", sizes())
    purge_everything()
    sizes_kept("purged", sizes())
    vacuum()
    sizes_kept("purged, VACUUM", sizes())


def main() -> None:
    """Run the pipeline, report, and delete the run's topics and tasks."""
    args = parse_args()
    if settings.DEBUG:
        sys.exit("run with DEBUG off: Django keeps every query in memory with it on")
    prefix = f"million-{uuid.uuid4().hex[:8]}"
    log_dir = Path(tempfile.mkdtemp(prefix="bench-million-"))
    print(f"logs in {log_dir}; load average {os.getloadavg()[0]:.2f}")
    try:
        run = run_pipeline(args, prefix, log_dir)
        report(args, run)
    finally:
        clean_up(prefix)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
