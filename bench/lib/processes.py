"""Start Celery processes for a benchmark and stop every one of them by PID."""

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")
STOP_TIMEOUT_S = 20.0


class Processes:
    """Celery worker and beat processes started by one benchmark run."""

    def __init__(self, log_dir: Path, env: dict[str, str]):
        self.log_dir = log_dir
        self.env = env
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def celery(self, name: str, app: str, *args: str) -> int:
        """Start `celery -A app ARGS` logging to LOG_DIR/name.log; return its PID."""
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by Popen
        self.running[name] = subprocess.Popen(
            [CELERY, "-A", app, *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        return self.running[name].pid

    def worker(self, name: str, app: str, queue: str) -> int:
        """Start a one-process (solo pool) worker on `queue`, node name name@host."""
        return self.celery(
            name,
            app,
            "worker",
            "-Q",
            queue,
            "--pool",
            "solo",
            "-c",
            "1",
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        )

    def pids(self) -> dict[str, int]:
        """Return {name: pid} of the processes started so far."""
        return {name: process.pid for name, process in self.running.items()}

    def check_alive(self) -> None:
        """Fail naming the process and its log when one has exited early."""
        for name, process in self.running.items():
            if process.poll() is not None:
                sys.exit(
                    f"{name} exited with code {process.returncode}; "
                    f"see {self.log_dir / name}.log"
                )

    def stop(self) -> None:
        """SIGTERM each process we started, then SIGKILL those that hang."""
        for process in self.running.values():
            if process.poll() is None:
                process.terminate()
        for process in self.running.values():
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        self.running.clear()
