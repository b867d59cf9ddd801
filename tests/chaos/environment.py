"""A private deployment for chaos runs: services, a recorder, web server, Celery.

Everything here is started by the harness and stopped by PID: a private Stack
(PostgreSQL, Redis, broker) that scenarios may stop and start again, a second
Redis that only records handler runs (never restarted), gunicorn serving the
API, beat, the publisher worker and the rotation workers, all with the short
test tunings of tests/cluster.py.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis

from rotation.lanes import Lane, text
from scheduler_site.devstack import brokers
from scheduler_site.devstack.process import Service, free_port, tcp_open
from scheduler_site.devstack.services import Stack
from scheduler_site.workers import web_argv
from tests.chaos.api import Answers, ApiClient
from tests.cluster import TEST_TUNING, Cluster, wait_for
from tests.handlers import RECORD_URL_VAR

REPO = Path(__file__).resolve().parents[2]
GROUP = "default"
WEB_WORKERS = 2
START_TIMEOUT_S = 60.0
SECRET_KEY_BYTES = 50
# Workers run registered handlers only; this module registers `record`.
HANDLER_MODULE = "tests.handlers"


@dataclass(frozen=True)
class Timing:
    """The rotation's timing in these runs, and the recovery target it implies."""

    slice_ms: int = 500
    grace_ms: int = int(TEST_TUNING["SCHEDULER_LEASE_GRACE_MS"])
    watchdog_s: float = float(TEST_TUNING["SCHEDULER_WATCHDOG_S"])

    @property
    def lease_ttl_s(self) -> float:
        """A lease lasts one slice plus the grace (rotation/slice.py)."""
        return (self.slice_ms + self.grace_ms) / 1000

    @property
    def recovery_target_s(self) -> float:
        """Issue 8's target: one lease TTL plus two watchdog ticks."""
        return self.lease_ttl_s + 2 * self.watchdog_s


TIMING = Timing()


class ChaosEnv:
    """Start, break, mend and stop one private deployment."""

    def __init__(self, *, workers: int = 3) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="chaos-"))
        self.log_dir = self.root / "logs"
        self.log_dir.mkdir()
        self.stack = Stack(self.root / "stack", persistent=False)
        self.recorder: Service | None = None
        self.cluster: Cluster | None = None
        self.workers = [f"w{n}" for n in range(1, workers + 1)]
        self.base_url = ""
        self.token = ""

    def start(self) -> None:
        """Start services and migrate; then web, beat and workers all at once,
        creating the admin while they boot; wait until they serve."""
        env = self.stack.start(environ={})  # never reuse the caller's services
        self.recorder = brokers.start_redis(
            self.root / "recorder", free_port(), persistent=False
        )
        env = {
            **os.environ,
            **env,
            "SECRET_KEY": secrets.token_urlsafe(SECRET_KEY_BYTES),
            "DEBUG": "0",
            # Plain HTTP on localhost: no TLS proxy in front of gunicorn here.
            "SECURE_SSL_REDIRECT": "0",
            "SCHEDULER_HANDLER_MODULES": HANDLER_MODULE,
            "SCHEDULER_SLICE_MS": str(TIMING.slice_ms),
            RECORD_URL_VAR: self.recorder.url,
        }
        self._manage(env, "migrate", "--noinput", "-v", "0")
        self.cluster = Cluster(env, self.log_dir)
        web_port = self._start_web()
        self.cluster.start_control()
        for name in self.workers:
            self.spawn_worker(name)
        self.token = self._admin_token(env)
        wait_for(
            lambda: tcp_open(web_port),
            timeout_s=START_TIMEOUT_S,
            what=f"gunicorn to listen on {web_port}",
        )
        self._await_workers()

    def stop(self, *, keep_logs: bool) -> Path | None:
        """Stop everything started here; keep the logs (not the data) if asked.

        Returns the directory holding the kept logs, if any.
        """
        if self.cluster is not None:
            self.cluster.stop()
        if self.recorder is not None:
            self.recorder.stop()
        self.stack.stop()
        if not keep_logs:
            shutil.rmtree(self.root, ignore_errors=True)
            return None
        for data in ("stack/postgres", "stack/redis", "recorder/redis"):
            shutil.rmtree(self.root / data, ignore_errors=True)
        return self.root

    # Clients -----------------------------------------------------------------

    def api(self, answers: Answers) -> ApiClient:
        """Return a new API client (one per thread) signed in as the admin."""
        return ApiClient(self.base_url, self.token, answers)

    def app_redis(self) -> redis.Redis:
        """Return a client of the application's Redis (which scenarios restart)."""
        return redis.Redis.from_url(
            self.stack.env["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2
        )

    def record_redis(self) -> redis.Redis:
        """Return a client of the recording Redis."""
        assert self.recorder is not None
        return redis.Redis.from_url(self.recorder.url)

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        """Read from the application's database on a fresh connection.

        The harness only observes through SQL; it never writes there.
        """
        with psycopg.connect(self.stack.env["DATABASE_URL"], connect_timeout=3) as conn:
            return conn.execute(sql, params).fetchall()

    # Processes -----------------------------------------------------------------

    def holder(self, topic: str) -> str | None:
        """Return the worker name holding the topic's lane now, if any."""
        assert self.cluster is not None
        value = self.app_redis().get(Lane(GROUP, topic, 0).key("lease"))
        if not value:
            return None
        member = text(value).split(":")[1]  # token:member:nonce
        return self.cluster.name_of(member)

    def stop_worker(self, name: str, sig: signal.Signals) -> int:
        """Send a rotation worker `sig` (SIGKILL, or SIGTERM: Celery's warm
        shutdown, as a deploy sends) and reap it; return the PID it had."""
        assert self.cluster is not None
        pid = self.cluster.pids()[name]
        self.cluster.signal(name, sig)
        self.cluster.wait_exit(name)
        return pid

    def spawn_worker(self, name: str) -> int:
        """Start a rotation worker under its old name, without waiting for it."""
        assert self.cluster is not None
        return self.cluster.worker(name, "rotation")

    def heal(self) -> None:
        """Bring back anything a scenario left broken, so the next starts clean:
        stopped services, paused processes, dead or unjoined workers."""
        assert self.cluster is not None
        for key, service in self.stack.services.items():
            if service.process is not None and service.process.poll() is not None:
                self.stack.start_service(key)
            elif service.process is not None:
                service.process.send_signal(signal.SIGCONT)
        for name in self.workers:
            if self.cluster.alive(name):
                self.cluster.signal(name, signal.SIGCONT)
            else:
                self.cluster.running.pop(name, None)
                self.spawn_worker(name)
        self._await_workers()

    def _await_workers(self) -> None:
        """Wait until every rotation worker is a live member; fail if one died."""
        cluster = self.cluster
        assert cluster is not None
        members = {cluster.node(name) for name in self.workers}

        def joined() -> bool:
            cluster.check_alive()
            return members <= set(cluster.members.live())

        wait_for(joined, timeout_s=START_TIMEOUT_S, what="the workers to join")

    def _manage(self, env: dict[str, str], *args: str) -> str:
        """Run one manage.py command to completion; return its output."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
            )
        return result.stdout

    def _admin_token(self, env: dict[str, str]) -> str:
        """Create the superuser (the API needs a token) and return its token."""
        credentials = self.root / "credentials.json"
        self._manage(env, "ensure_admin", "--credentials", str(credentials))
        return str(json.loads(credentials.read_text())["token"])

    def _start_web(self) -> int:
        """Serve the API with gunicorn, as the Docker image does; return its port."""
        assert self.cluster is not None
        port = free_port()
        # make dev's command line; stopping need not wait 30 s for a request.
        argv = web_argv(port, server="gunicorn", workers=WEB_WORKERS)
        self.cluster.start("web", [*argv, "--graceful-timeout", "5"])
        self.base_url = f"http://127.0.0.1:{port}"
        return port
