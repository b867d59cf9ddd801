"""gunicorn's settings for the web app: Prometheus' multiprocess files.

Each gunicorn worker is its own process with its own metric values; with
PROMETHEUS_MULTIPROC_DIR set, prometheus_client keeps them in files there and
/metrics sums them (tasks_app/metrics/views.py). Used as
`gunicorn -c python:scheduler_site.gunicorn_conf` (Dockerfile, tests).
"""

import os
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def on_starting(server: Any) -> None:
    """Start from an empty directory: files left by an earlier run would add
    its values to this one's."""
    directory = os.environ.get(MULTIPROCESS_ENV)
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """Drop an exited worker's live gauges (prometheus_client's advice)."""
    if os.environ.get(MULTIPROCESS_ENV):
        multiprocess.mark_process_dead(worker.pid)
