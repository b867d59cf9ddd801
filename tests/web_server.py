"""A gunicorn server on the test database, as in production and `make dev`
(the same command line), for tests that need real HTTP (schemathesis, a browser).

Not Django's threaded test server: it answers each keep-alive request about
40 ms late (its two small writes meet TCP's delayed ACK).
"""

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scheduler_site.devstack.process import free_port, tcp_open
from scheduler_site.workers import web_argv
from tests.cluster import wait_for

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVER_START_TIMEOUT_S = 60.0
SERVER_STOP_TIMEOUT_S = 30.0


@contextmanager
def gunicorn(env: dict[str, str], log: Path, *, workers: int = 2) -> Iterator[str]:
    """Serve the app with `env` until the block ends; yield its base URL."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            web_argv(port, server="gunicorn", workers=workers),
            env=env,
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: process.poll() is not None or tcp_open(port),
            timeout_s=SERVER_START_TIMEOUT_S,
            what="gunicorn to listen",
        )
        assert process.poll() is None, log.read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=SERVER_STOP_TIMEOUT_S)
