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


@dataclass
class Child:
    """One long-running dev process and the log file that receives its output."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        """Tell whether the process has not exited yet."""
        return self.process.poll() is None


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


def start_child(
    name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path, cwd: Path
) -> Child:
    """Start one child in a new session; copy its output to our stdout and its log."""
    log_path = log_dir / f"{name}.log"
    log_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    forwarder = threading.Thread(
        target=_forward, args=(name, proc.stdout, log_path), daemon=True
    )
    forwarder.start()
    return Child(name, proc, log_path)


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


def watch(children: Sequence[Child]) -> Child:
    """Block until some child exits, and return it."""
    while True:
        for child in children:
            if not child.alive:
                return child
        time.sleep(WATCH_INTERVAL_S)


def stop_children(
    children: Sequence[Child], timeout_s: float = CHILD_STOP_TIMEOUT_S
) -> None:
    """SIGTERM every child's group, wait, then SIGKILL the groups still there."""
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(child.alive for child in children) and time.monotonic() < deadline:
        time.sleep(WATCH_INTERVAL_S / 5)
    for child in children:
        _signal_group(child, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(CHILD_KILL_TIMEOUT_S)


def _signal_group(child: Child, signum: int) -> None:
    """Signal the whole group a child leads (its own workers or reloaders too)."""
    try:
        os.killpg(child.process.pid, signum)
    except ProcessLookupError:
        return
    if signum == signal.SIGKILL:
        logger.warning("%s did not stop in time; killed it", child.name)
