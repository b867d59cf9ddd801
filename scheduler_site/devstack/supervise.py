"""Run long-lived dev children in their own process groups; stop them together."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

logger = logging.getLogger(__name__)

CHILD_STOP_TIMEOUT_S = 15.0
CHILD_KILL_TIMEOUT_S = 5.0
WATCH_INTERVAL_S = 0.5
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Shutdown(BaseException):
    """Unwind the launcher on SIGINT/SIGTERM (BaseException: no handler swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass(frozen=True)
class ChildSpec:
    """Everything needed to start one long-running child, and to start it again.

    `restart` False marks a child the stack cannot run without (the web server).
    """

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path
    log_dir: Path
    restart: bool = True

    @property
    def log_path(self) -> Path:
        """Return the file that collects this child's output across restarts."""
        return self.log_dir / f"{self.name}.log"


@dataclass
class Child:
    """One run of a long-running dev process."""

    spec: ChildSpec
    process: subprocess.Popen[bytes]

    @property
    def name(self) -> str:
        """Return the child's name (web, beat, worker1, ...)."""
        return self.spec.name

    @property
    def log_path(self) -> Path:
        """Return the file that receives the child's output."""
        return self.spec.log_path

    @property
    def alive(self) -> bool:
        """Tell whether the process has not exited yet (it stays unreaped)."""
        return exit_code(self.process) is None


def exit_code(process: subprocess.Popen[bytes]) -> int | None:
    """Return how a process ended (negative: its signal), without reaping it.

    An unreaped process keeps its PID and process group id reserved, so its
    group can still be signalled safely: no other process can have taken them.
    """
    if process.returncode is not None:
        return process.returncode
    try:
        info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped elsewhere meanwhile
        return process.poll()
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return -info.si_status


@dataclass
class _SignalState:
    """Whether a stop signal must wait for the end of a critical section."""

    deferring: bool = False
    pending: int | None = None


_state = _SignalState()


def _raise_shutdown(signum: int, frame: FrameType | None) -> None:
    """Turn the first stop signal into Shutdown; ignore repeats while cleaning up."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _note_repeat)
    if _state.deferring:
        _state.pending = signum
        return
    raise Shutdown(signum)


def _note_repeat(signum: int, frame: FrameType | None) -> None:
    """Keep cleanup going when the user presses Ctrl-C again."""
    print("devstack: already stopping, please wait", file=sys.stderr, flush=True)


@contextlib.contextmanager
def shutdown_on_signals() -> Iterator[None]:
    """Raise Shutdown in the main thread on SIGINT/SIGTERM, for the block's duration."""
    previous = {sig: signal.signal(sig, _raise_shutdown) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Shutdown back so a child is never spawned without being recorded.

    Not a signal mask: children would inherit it and ignore our SIGTERM.
    """
    _state.deferring = True
    try:
        yield
    finally:
        _state.deferring = False
        signum, _state.pending = _state.pending, None
        if signum is not None:
            raise Shutdown(signum)


def start_child(spec: ChildSpec) -> Child:
    """Start one child in a new session; copy its output to our stdout and its log."""
    spec.log_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        list(spec.argv),
        cwd=spec.cwd,
        env=dict(spec.env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    forwarder = threading.Thread(
        target=_forward, args=(spec.name, proc.stdout, spec.log_path), daemon=True
    )
    forwarder.start()
    return Child(spec, proc)


def _forward(name: str, stream: IO[bytes], log_path: Path) -> None:
    """Copy each output line to the log file, and prefixed to our stdout."""
    prefix = f"{name:>10} | "
    with log_path.open("ab") as log, stream:
        for line in stream:
            log.write(line)
            log.flush()
            text = line.decode(errors="replace").rstrip("\n")
            with contextlib.suppress(OSError, ValueError):
                print(prefix + text, flush=True)


def stop_children(
    children: Sequence[Child], timeout_s: float = CHILD_STOP_TIMEOUT_S
) -> None:
    """SIGTERM every child's group, wait, SIGKILL what is left of each group, reap.

    Leaders stay unreaped until their group is killed, so a group id can never
    belong to some other process by then. A child already reaped (one waiting
    for its restart) had its group killed when it died.
    """
    running = [child for child in children if child.process.returncode is None]
    for child in running:
        kill_group(child.process, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(child.alive for child in running) and time.monotonic() < deadline:
        time.sleep(WATCH_INTERVAL_S / 5)
    for child in running:
        if child.alive:
            logger.warning("%s did not stop in time; killed it", child.name)
        kill_group(child.process, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(CHILD_KILL_TIMEOUT_S)


def kill_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal the whole group a process leads (its own workers or reloaders too).

    Call only before the leader is reaped (see `exit_code`).
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
