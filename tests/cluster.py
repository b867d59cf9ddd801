"""Real Celery processes for the rotation tests: rotation workers, publisher, beat."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

from rotation.members import Members

CELERY = str(Path(sys.executable).parent / "celery")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0

# Short intervals so failures are noticed quickly in tests.
TEST_TUNING = {
    "SCHEDULER_HEARTBEAT_S": "0.5",
    "SCHEDULER_WATCHDOG_S": "0.5",
    "SCHEDULER_PUBLISH_INTERVAL": "0.5",
    "SCHEDULER_LEASE_GRACE_MS": "700",
    "SCHEDULER_POLL_TIMEOUT_MS": "50",
    "LOG_LEVEL": "INFO",
}


def wait_for(
    condition: Callable[[], object],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.05,
) -> object:
    """Poll until `condition()` is truthy and return it; fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class Cluster:
    """Start, signal and stop Celery processes sharing the test's services."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = {**env, **TEST_TUNING}
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}
        self.members = Members(
            redis.Redis.from_url(env["REDIS_URL"]),
            heartbeat_s=float(TEST_TUNING["SCHEDULER_HEARTBEAT_S"]),
        )

    def node(self, name: str) -> str:
        """Return the Celery node name (and member name) of a worker."""
        return f"{name}@{socket.gethostname()}"

    def start_worker(self, name: str) -> str:
        """Start a rotation worker and wait until it has joined as a member."""
        self._spawn(
            name,
            [
                "worker",
                "-Q",
                "rotation",
                "--pool",
                "solo",
                "-c",
                "1",
                "-n",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
        )
        node = self.node(name)
        wait_for(
            lambda: node in self.members.live(),
            timeout_s=START_TIMEOUT_S,
            what=f"worker {name} to join",
        )
        return node

    def start_control(self) -> None:
        """Start beat and the publisher worker (which also runs the watchdog)."""
        self._spawn(
            "publisher",
            [
                "worker",
                "-Q",
                "publish",
                "--pool",
                "solo",
                "-c",
                "1",
                "-n",
                "publisher@%h",
                "--without-gossip",
                "--without-mingle",
            ],
        )
        schedule = self.log_dir / "celerybeat-schedule"
        self._spawn("beat", ["beat", "--schedule", str(schedule)])

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by Popen
        self.processes[name] = subprocess.Popen(
            [CELERY, "-A", "scheduler_site", *args, "--loglevel", "INFO"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
        )

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def signal(self, name: str, sig: signal.Signals) -> None:
        os.kill(self.pid(name), sig)

    def wait_exit(self, name: str, timeout_s: float = STOP_TIMEOUT_S) -> int:
        return self.processes.pop(name).wait(timeout=timeout_s)

    def name_of(self, member: str) -> str:
        """Map a member (node name) back to the worker name it was started as."""
        return member.split("@", 1)[0]

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM everything (resuming stopped ones first), then SIGKILL stragglers."""
        for process in self.processes.values():
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
