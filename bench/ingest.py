"""Benchmark the API's bulk submission: a POST of 1,000 tasks, full and lean answers.

Run against a fresh embedded stack (`make bench` does):
    python -m scheduler_site.devstack exec -- .venv/bin/python bench/ingest.py

Signs in as an operator with DRF's test client (the whole Django stack, without
a socket), POSTs lists of 1,000 tasks to fresh topics, alternating the default
answer (every task in full) with `Prefer: return=minimal` (id and status), and
reports the median wall time and this process's CPU time per POST. The
publisher does not run, so each POST meets the same idle tables. Results and
the machine: docs/benchmarks.md.
"""

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_site.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from bench.lib import summary  # noqa: E402
from tasks_app.models import Task, Topic  # noqa: E402

LIST_SIZE = 1000
DEFAULT_ROUNDS = 15
# The Prefer header of each answer shape ("" sends none).
ANSWERS = {"full": "", "minimal": "return=minimal"}


def parse_args() -> argparse.Namespace:
    """Read the knobs: how many POSTs of each answer shape."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    return parser.parse_args()


def operator_client() -> APIClient:
    """A client signed in as a throwaway superuser (no throttling applies)."""
    user = User.objects.create_superuser(f"bench-{uuid.uuid4().hex[:8]}")
    client = APIClient()
    client.force_authenticate(user)
    return client


def post(client: APIClient, topic: str, prefer: str) -> tuple[float, float]:
    """POST one list of tasks; return (wall seconds, CPU seconds) it took."""
    body = [
        {"topic": topic, "message": {"n": n, "pad": "x" * 40}} for n in range(LIST_SIZE)
    ]
    wall, cpu = time.perf_counter(), time.process_time()
    response = client.post(
        "/api/tasks/", body, format="json", secure=True, headers={"Prefer": prefer}
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if response.status_code != 201:
        raise SystemExit(
            f"POST answered {response.status_code}: {response.content[:300]!r}"
        )
    return wall, cpu


def main() -> None:
    args = parse_args()
    client = operator_client()
    topic = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    post(client, topic, "")  # creates the topic, warms the connection
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in ANSWERS}
    for _ in range(args.rounds):
        for name, prefer in ANSWERS.items():
            timings[name].append(post(client, topic, prefer))
    print(f"POST of {LIST_SIZE:,} tasks, {args.rounds} rounds each, alternating")
    print(f"  {'answer':<10}{'wall p50 ms':>14}{'CPU p50 ms':>14}")
    for name, samples in timings.items():
        wall = statistics.median(w for w, _ in samples) * 1000
        cpu = statistics.median(c for _, c in samples) * 1000
        print(f"  {name:<10}{wall:>14.1f}{cpu:>14.1f}")
        summary.add(
            "ingest",
            f"POST of {LIST_SIZE:,} tasks p50, {name} answer",
            wall,
            "ms",
            target="< 150 ms (idle stack)",
            met=wall < 150,
            detail=f"CPU p50 {cpu:.1f} ms",
        )
    Task.objects.filter(topic__name=topic).delete()
    Topic.objects.filter(name=topic).delete()


if __name__ == "__main__":
    main()
