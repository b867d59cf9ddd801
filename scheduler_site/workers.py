"""The process command lines (Celery's and the web server's), written once for
`make dev`, the tests, the benchmarks and compose.

`python -m scheduler_site.workers worker rotation worker1` runs a rotation
worker, `... worker publish publisher` the publisher, `... beat` beat (with
django-celery-beat's database scheduler), `... flower PORT [ADDRESS]` Flower;
each process replaces itself with Celery, so signals reach Celery directly.

Every worker runs the solo pool (one task at a time: a rotation member holds
one lane, the publisher is one at a time anyway) without gossip and mingle:
members coordinate through Redis keys, and mingle only delays start-up.
"""

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

APP = "scheduler_site"
CELERY = str(Path(sys.executable).parent / "celery")
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Flower listens on this host only unless told otherwise (compose: 0.0.0.0).
LOCAL_ONLY = "127.0.0.1"
# Web processes: one per core of a small machine; more only queue for the CPU
# the workers, the publisher and PostgreSQL need too.
WEB_WORKERS = 2
WebServer = Literal["gunicorn", "runserver"]


def web_argv(port: int, *, server: WebServer, workers: int = WEB_WORKERS) -> list[str]:
    """Build the web server's command line on 127.0.0.1:`port`, run from the
    repository root: gunicorn with `workers` processes and its request log on
    stdout (Prometheus' files: gunicorn_conf.py), or Django's runserver without
    the reloader."""
    if server == "runserver":
        return [sys.executable, "manage.py", "runserver", f"{LOCAL_ONLY}:{port}",
                "--noreload"]  # fmt: skip
    return [
        GUNICORN, "scheduler_site.wsgi", "--bind", f"{LOCAL_ONLY}:{port}",
        "--workers", str(workers), "--config", "python:scheduler_site.gunicorn_conf",
        "--access-logfile", "-",
    ]  # fmt: skip


def worker_argv(
    queue: str, name: str, *, loglevel: str = "INFO", app: str = APP
) -> list[str]:
    """Build the command line of a one-process worker on `queue` named name@host
    (of another Celery `app` only for benchmarks' baselines)."""
    return [
        CELERY, "-A", app, "worker", "-Q", queue, "--pool", "solo",
        "--concurrency", "1", "-n", f"{name}@%h", "--without-gossip",
        "--without-mingle", "--loglevel", loglevel,
    ]  # fmt: skip


def beat_argv(*, loglevel: str = "INFO") -> list[str]:
    """Build the command line of beat, its schedule kept in PostgreSQL
    (django-celery-beat): the built-in entries and operators' schedules."""
    return [
        CELERY,
        "-A",
        APP,
        "beat",
        "--scheduler",
        BEAT_SCHEDULER,
        "--loglevel",
        loglevel,
    ]


def flower_argv(port: int, *, address: str = LOCAL_ONLY) -> list[str]:
    """Build the command line of Flower on `address:port`.

    Its login comes from FLOWER_BASIC_AUTH (`user:password`) in the
    environment, never from the command line, which other users can read.
    """
    return [CELERY, "-A", APP, "flower", f"--port={port}", f"--address={address}"]


def _flower_command(port: str, address: str = LOCAL_ONLY) -> list[str]:
    """Refuse to start Flower without a login: its API can stop workers."""
    if ":" not in os.environ.get("FLOWER_BASIC_AUTH", ""):
        sys.exit(
            "flower: set FLOWER_BASIC_AUTH=user:password first; without a login "
            "anyone reaching the port could revoke tasks and shut workers down"
        )
    return flower_argv(int(port), address=address)


def main(argv: Sequence[str]) -> None:
    """Replace this process with the worker, beat or Flower that `argv` asks for."""
    match list(argv):
        case ["worker", queue, name]:
            command = worker_argv(queue, name)
        case ["beat"]:
            command = beat_argv()
        case ["flower", port, *rest] if port.isdigit() and len(rest) <= 1:
            command = _flower_command(port, *rest)
        case _:
            sys.exit(
                "usage: python -m scheduler_site.workers worker QUEUE NAME "
                "| beat | flower PORT [ADDRESS]"
            )
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
