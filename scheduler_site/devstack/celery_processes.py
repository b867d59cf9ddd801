"""Start named Celery processes (and a benchmark's web server), each with its own
log, and stop them by PID.

The end-to-end tests (tests/cluster.py) and the benchmarks (bench/) run real
workers, beat and Flower this way; `make dev` supervises its children in supervise.py.
"""

import signal
import subprocess
from pathlib import Path

from scheduler_site.workers import APP, beat_argv, flower_argv, worker_argv

REPO = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 20.0


class ProcessExited(RuntimeError):
    """A process started here exited while it should still be running."""


class CeleryProcesses:
    """The Celery worker and beat processes one test module or benchmark started."""

    def __init__(self, log_dir: Path, env: dict[str, str], *, loglevel: str = "INFO"):
        self.log_dir = log_dir
        self.env = env
        self.loglevel = loglevel
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, argv: list[str], *, extra_env: dict[str, str] | None = None
    ) -> int:
        """Start a command logging to LOG_DIR/name.log, with `extra_env` added to
        the environment; return its PID."""
        env = {**self.env, **(extra_env or {})}
        with open(self.log_dir / f"{name}.log", "ab") as log:  # the child keeps a copy
            self.running[name] = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
            )
        return self.running[name].pid

    def worker(self, name: str, queue: str, *, app: str = APP) -> int:
        """Start a worker on `queue`, node name name@host (scheduler_site.workers)."""
        return self.start(
            name, worker_argv(queue, name, loglevel=self.loglevel, app=app)
        )

    def beat(self) -> int:
        """Start beat (its schedule is in the database: django-celery-beat)."""
        return self.start("beat", beat_argv(loglevel=self.loglevel))

    def flower(self, port: int) -> int:
        """Start Flower on 127.0.0.1:`port`; it logs in with FLOWER_BASIC_AUTH."""
        return self.start("flower", flower_argv(port))

    def alive(self, name: str) -> bool:
        """Tell whether `name` was started and has not exited."""
        process = self.running.get(name)
        return process is not None and process.poll() is None

    def pids(self) -> dict[str, int]:
        """Return {name: pid} of the processes started so far."""
        return {name: process.pid for name, process in self.running.items()}

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Send `sig` to one process (SIGSTOP, SIGTERM, SIGKILL in tests)."""
        self.running[name].send_signal(sig)

    def wait_exit(self, name: str, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Wait for `name` to exit, forget it, and return its exit code."""
        return self.running.pop(name).wait(timeout=timeout_s)

    def check_alive(self) -> None:
        """Raise ProcessExited, naming the process and its log, if one has exited."""
        for name, process in self.running.items():
            if process.poll() is not None:
                raise ProcessExited(
                    f"{name} exited with code {process.returncode}; "
                    f"see {self.log_dir / name}.log"
                )

    def stop(self) -> None:
        """Resume and SIGTERM each process still running, then SIGKILL stragglers."""
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a test may have frozen it
                process.terminate()
        for process in self.running.values():
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.running.clear()
