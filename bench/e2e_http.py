"""Benchmark the end-to-end path over real HTTP, against the web server `make dev` runs.

Run against a fresh embedded stack (`make bench` runs it too):
    SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(50))') \
    python -m scheduler_site.devstack exec -- .venv/bin/python bench/e2e_http.py

Starts the web server with `make dev`'s command line (scheduler_site.workers
`web_argv`; `--server` picks the other one, to compare), the publisher, beat
and the rotation workers (real processes), creates fresh topics with the no-op
handler and a submitter (the service layer, as `create_user` does), then has
client threads POST bulk lists with `Prefer: return=minimal` over a socket,
each list round-robin over the topics, while the workers run. Reports
throughput from the first POST to the last finish, the submission rate, order
per topic, CPU per process, and plain Celery no-op tasks in the same run for
the ratio. Then, the stack idle again, submit to finish of single tasks: one
POST at a time to a fresh topic, each waited for before the next
(`finished_at - created_at`, the server's clocks). The topics, tasks and
user are deleted at the end.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import get_args

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_site.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402

from bench.lib import figures, report, summary  # noqa: E402
from bench.lib.celery_noop import celery_noop_rates  # noqa: E402
from bench.lib.cpu import stack_meter  # noqa: E402
from bench.lib.figures import TaskRow  # noqa: E402
from bench.lib.rotation_run import (  # noqa: E402
    FINISHED,
    TASKS_URL,
    collect,
    count_in,
    make_topics,
    start_stack,
    wait_until,
)
from bench.publish import clean_up  # noqa: E402
from scheduler_site.devstack.celery_processes import CeleryProcesses as Processes  # noqa: E402
from scheduler_site.devstack.dev import DEV_WEB_SERVER  # noqa: E402
from scheduler_site.devstack.process import free_port, tcp_open  # noqa: E402
from scheduler_site.workers import WebServer, web_argv  # noqa: E402
from tasks_app.roles import Role  # noqa: E402
from tasks_app.services.users import user_create  # noqa: E402

DEFAULT_TASKS = 40_000
DEFAULT_TOPICS = 4
DEFAULT_CLIENTS = 2
DEFAULT_WORKERS = 2
DEFAULT_SLICE_MS = 300
DEFAULT_CELERY_TASKS = 5_000
DEFAULT_IDLE_SAMPLES = 50
# Between single-task samples, so each one meets an idle stack.
IDLE_PAUSE_S = 0.2
TARGET_IDLE_P50_MS = 50.0
WEB_START_TIMEOUT_S = 60.0
POST_TIMEOUT_S = 120.0
# The clients speak plain HTTP to the server as a TLS proxy would, saying so in
# this header; the server trusts it (SECURE_PROXY_SSL_HEADER) and does not
# redirect to HTTPS. Only the bench's own web server is told to.
PROXY_HEADER = "X-Forwarded-Proto"
CLIENTS = "bench (HTTP clients)"


def parse_args() -> argparse.Namespace:
    """Read the knobs: tasks, topics, clients, web server, workers, baseline size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=DEFAULT_TASKS)
    parser.add_argument("--topics", type=int, default=DEFAULT_TOPICS)
    parser.add_argument(
        "--clients", type=int, default=DEFAULT_CLIENTS, help="threads POSTing at once"
    )
    parser.add_argument(
        "--server",
        choices=get_args(WebServer),
        default=DEV_WEB_SERVER,
        help=f"web server (default: make dev's, {DEV_WEB_SERVER})",
    )
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--slice-ms", type=int, default=DEFAULT_SLICE_MS)
    parser.add_argument(
        "--celery-tasks",
        type=int,
        default=DEFAULT_CELERY_TASKS,
        help="no-op tasks per round of the plain Celery baseline",
    )
    parser.add_argument(
        "--idle-samples",
        type=int,
        default=DEFAULT_IDLE_SAMPLES,
        help="single tasks submitted one at a time to the idle stack",
    )
    return parser.parse_args()


def bodies(topics: list[str], count: int, clients: int) -> list[list[bytes]]:
    """Encode the bulk lists (round-robin over topics), dealt out to the clients,
    before the clock starts: the bench measures the server, not its own JSON."""
    chunk = settings.SCHEDULER_MAX_BULK_TASKS
    lists = [
        json.dumps(
            [
                {"topic": topics[n % len(topics)], "message": {"n": n}}
                for n in range(first, min(first + chunk, count))
            ]
        ).encode()
        for first in range(0, count, chunk)
    ]
    return [lists[client::clients] for client in range(clients)]


class HttpClient:
    """POSTs to one server with a submitter's token, each on a new connection."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url
        self.headers = {
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            PROXY_HEADER: "https",
        }

    def post_all(self, lists: list[bytes]) -> None:
        """POST each list in turn; fail on any answer but 201."""
        for body in lists:
            self._post(body)

    def post_one(self, task: dict) -> None:
        """POST one task (not a list); fail on any answer but 201."""
        self._post(json.dumps(task).encode())

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(
            self.base_url + TASKS_URL,
            data=body,
            method="POST",
            # return=minimal: a bulk client needs the ids, not each task in full.
            headers={**self.headers, "Prefer": "return=minimal"},
        )
        with urllib.request.urlopen(request, timeout=POST_TIMEOUT_S) as answer:
            if answer.status != 201:
                sys.exit(f"submit failed: {answer.status} {answer.read()[:500]!r}")

    def get(self, path: str) -> None:
        """GET a route (warm-up: imports and connections made before the clock)."""
        request = urllib.request.Request(self.base_url + path, headers=self.headers)
        with urllib.request.urlopen(request, timeout=POST_TIMEOUT_S) as answer:
            answer.read()


def start_web(processes: Processes, server: WebServer) -> str:
    """Start the web server with `make dev`'s command line and wait until it
    listens; return its base URL."""
    port = free_port()
    trust_proxy = {"SECURE_PROXY_SSL_HEADER": PROXY_HEADER}
    processes.start("web", web_argv(port, server=server), extra_env=trust_proxy)
    deadline = time.monotonic() + WEB_START_TIMEOUT_S
    while not tcp_open(port):
        processes.check_alive()
        if time.monotonic() > deadline:
            sys.exit(f"the web server did not listen; see {processes.log_dir}/web.log")
        time.sleep(0.1)
    return f"http://127.0.0.1:{port}"


def submitter(prefix: str) -> str:
    """Create the bench's submitter through the service layer; return its token."""
    return user_create(username=f"{prefix}-client", role=Role.SUBMITTER).token


def stream(
    processes: Processes,
    client: HttpClient,
    topics: list[str],
    args: argparse.Namespace,
) -> report.Phase:
    """POST every list from the client threads while the workers run; wait until
    all finished; return the phase (clock from the first POST)."""
    per_client = bodies(topics, args.tasks, args.clients)
    meter = stack_meter(processes.pids(), bench=CLIENTS)
    meter.start()
    started, clock = time.time(), time.monotonic()
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        list(pool.map(client.post_all, per_client))  # raises a client's failure
    submit_s = time.monotonic() - clock
    wait_until(processes, count_in(topics, FINISHED), args.tasks, "finished")
    cpu = meter.stop()
    return report.Phase(*collect(topics), submit_s, started, cpu)


def idle_tasks(
    processes: Processes, client: HttpClient, topic: str, samples: int
) -> list[TaskRow]:
    """Submit single tasks to the idle stack, each finished before the next;
    return their rows (server clocks)."""
    finished = count_in([topic], FINISHED)
    for n in range(samples):
        time.sleep(IDLE_PAUSE_S)
        client.post_one({"topic": topic, "message": {"idle": n}})
        wait_until(processes, finished, n + 1, "finished (idle samples)")
    tasks, _ = collect([topic])
    return tasks


def run(args: argparse.Namespace, prefix: str, log_dir: Path) -> None:
    """Start everything, run the phase, stop, measure plain Celery, print."""
    load_at_start = os.getloadavg()[0]
    topics = make_topics(prefix, args.topics, slice_ms=args.slice_ms, paused=False)
    [idle_topic] = make_topics(
        f"{prefix}-idle", 1, slice_ms=args.slice_ms, paused=False
    )
    processes = Processes(log_dir, dict(os.environ), loglevel="WARNING")
    try:
        client = HttpClient(start_web(processes, args.server), submitter(prefix))
        start_stack(processes, args.workers)
        for _ in range(2 * args.clients):
            client.get(TASKS_URL)
        print(f"{args.server} and {args.workers} rotation workers up; submitting ...")
        phase = stream(processes, client, topics, args)
        print(f"{args.idle_samples} single tasks on the idle stack ...")
        idle = idle_tasks(processes, client, idle_topic, args.idle_samples)
    finally:
        processes.stop()
    print("plain Celery baseline ...")
    celery = celery_noop_rates(
        tasks=args.celery_tasks, workers=args.workers, log_dir=log_dir
    )
    print_figures(args, phase, celery, load_at_start)
    print_idle(args, idle)


def print_idle(args: argparse.Namespace, tasks: list[TaskRow]) -> None:
    """Print the idle stack's submit-to-finish figures, step by step; add the
    whole to the summary."""
    latencies = [(t.finished - t.created) * 1000 for t in tasks]
    p50, p99 = (figures.percentile(latencies, pct) for pct in (50, 99))
    print(
        f"  {'idle: submit -> finish p50 / p99':<40} {p50:,.1f} / {p99:,.1f} ms "
        f"({len(tasks)} single tasks over HTTP, {IDLE_PAUSE_S} s apart)"
    )
    for step, start, end in (
        ("accepted -> published", "created", "published"),
        ("published -> handler started", "published", "started"),
        ("handler started -> finished", "started", "finished"),
    ):
        gaps = [(getattr(t, end) - getattr(t, start)) * 1000 for t in tasks]
        print(f"    {step:<38} p50 {figures.percentile(gaps, 50):,.1f} ms")
    summary.add(
        "e2e_http",
        f"idle stack: submit -> finish p50 ({args.server})",
        p50,
        "ms",
        target=f"< {TARGET_IDLE_P50_MS:g} ms",
        met=p50 < TARGET_IDLE_P50_MS,
        detail=f"p99 {p99:,.1f} ms, {len(latencies)} single tasks",
    )


def print_figures(
    args: argparse.Namespace,
    phase: report.Phase,
    celery: list[float],
    load_at_start: float,
) -> None:
    """Print the phase, its CPU and the ratio; add them to the run's summary."""
    best = max(celery)
    submit_rate = len(phase.tasks) / phase.submit_s
    latencies = [t.finished - t.created for t in phase.tasks]
    p50, p99 = (figures.percentile(latencies, pct) * 1000 for pct in (50, 99))
    ratio = phase.rate / best
    met = ratio >= report.TARGET_CELERY_RATIO and phase.order_held
    rounds = ", ".join(f"{rate:,.0f}" for rate in celery)
    print(
        f"\nEnd to end over HTTP ({args.server}): {args.tasks:,} tasks over "
        f"{args.topics} topics, {args.clients} clients POSTing lists of "
        f"{settings.SCHEDULER_MAX_BULK_TASKS:,}, {args.workers} rotation workers, "
        f"load average {load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    )
    for label, value in (
        ("submission, first POST -> last answer", f"{submit_rate:,.0f} tasks/s"),
        ("throughput, first POST -> last finish", f"{phase.rate:,.0f} tasks/s"),
        ("submit -> finish latency p50 / p99", f"{p50:,.1f} / {p99:,.1f} ms"),
        ("order held", "yes" if phase.order_held else "NO"),
        ("plain Celery no-op (best round)", f"{best:,.0f} tasks/s ({rounds})"),
        ("end to end / plain Celery", f"{ratio:.2f}x (target >= 5x: "
         f"{'met' if met else 'NOT met'})"),
    ):  # fmt: skip
        print(f"  {label:<40} {value}")
    report.cpu({f"over HTTP ({args.server})": phase})
    name = f"end to end over HTTP ({args.server}) / plain Celery"
    detail = f"{phase.rate:,.0f} vs {best:,.0f} tasks/s; submitted {submit_rate:,.0f}/s"
    summary.add(
        "e2e_http",
        name,
        ratio,
        "x",
        target=f">= {report.TARGET_CELERY_RATIO:g}x, order held",
        met=met,
        detail=detail,
    )
    summary.add("e2e_http", f"submission over HTTP ({args.server})", submit_rate,
                "tasks/s", detail=f"{args.clients} clients")  # fmt: skip


def main() -> None:
    """Migrate, run, and delete the run's topics, tasks and user whatever happened."""
    args = parse_args()
    call_command("migrate", interactive=False, verbosity=0)
    prefix = f"http-{uuid.uuid4().hex[:8]}"
    log_dir = Path(tempfile.mkdtemp(prefix="bench-e2e-http-"))
    print(f"logs in {log_dir}")
    try:
        run(args, prefix, log_dir)
    finally:
        clean_up(prefix)
        get_user_model().objects.filter(username=f"{prefix}-client").delete()


if __name__ == "__main__":
    main()
