"""Process plumbing for the embedded services: errors, ports, spawn, wait, stop."""

from __future__ import annotations

import itertools
import logging
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
KILL_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.05
LOG_TAIL_LINES = 20
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
IANA_DYNAMIC_PORTS = range(49152, 65536)
# Where chosen ports come from: above the services' usual ports (5432, 6379,
# 8000, 9092, ...), which `make dev` may claim later.
LISTEN_PORTS = range(10000, 65536)
# Random picks from LISTEN_PORTS before falling back to the kernel's choice.
PICK_TRIES = 1000


class StackError(RuntimeError):
    """Name the failing service and say what to do, so the message alone is enough."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.message = message


@dataclass
class Service:
    """One embedded service, or one reused from the environment (`process` None)."""

    name: str
    env_var: str
    url: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int | None:
        """Return the server's PID, or None when the service was reused."""
        return None if self.process is None else self.process.pid

    @property
    def started(self) -> bool:
        """Tell whether this stack started the server (and so must stop it)."""
        return self.process is not None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the server with its clean-shutdown signal; kill its group on a hang."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        logger.debug("stopping %s (pid %d)", self.name, proc.pid)
        proc.send_signal(self.stop_signal)
        proc.send_signal(signal.SIGCONT)  # a test may have paused it with SIGSTOP
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning(
                "%s (pid %d) did not stop within %.0f s; killing it",
                self.name,
                proc.pid,
                timeout_s,
            )
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(KILL_TIMEOUT_S)


def _signal_group(pid: int, signum: int) -> None:
    """Signal the process group our child leads (it was started in its own session)."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        logger.debug("process group %d is already gone", pid)


def pid_alive(pid: int) -> bool:
    """Tell whether a process with this PID exists (zombies of ours count as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_port() -> int:
    """One currently unused local TCP port that no outgoing connection will take."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Distinct unused local TCP ports, outside the kernel's ephemeral range.

    A port from a bind on port 0 comes from the ephemeral range, which every
    outgoing connection draws from too: between choosing it and its server
    binding it, a client could take it (a CI run lost gunicorn's port that way).
    Each port is held bound until all are chosen, so they differ.
    """
    held: list[socket.socket] = []
    try:
        for port in _listen_candidates():
            if len(held) == count:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((LOCALHOST, port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        return [int(sock.getsockname()[1]) for sock in held]
    finally:
        for sock in held:
            sock.close()


def _listen_candidates() -> Iterator[int]:
    """Random ports from LISTEN_PORTS outside the ephemeral range; then 0 (the
    kernel's choice), should the range leave too few of them free."""
    ephemeral = _ephemeral_ports()
    for _ in range(PICK_TRIES):
        port = random.choice(LISTEN_PORTS)
        if port not in ephemeral:
            yield port
    yield from itertools.repeat(0)


def _ephemeral_ports() -> range:
    """The ports the kernel gives outgoing connections: Linux's setting, or
    IANA's dynamic range (what macOS and the BSDs use) where that is absent."""
    try:
        low, high = EPHEMERAL_RANGE_FILE.read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return IANA_DYNAMIC_PORTS


def ensure_port_free(service: str, port: int, advice: str) -> None:
    """Fail before starting anything when another process already holds the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError as exc:
            raise StackError(
                service,
                f"port {port} is taken by another process ({exc.strerror}); {advice}",
            ) from exc


def require_binary(service: str, path: Path, package: str, url_var: str) -> None:
    """Fail with an install hint when a server binary is missing or not executable."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise StackError(
            service,
            f"binary {path} is missing or not executable; reinstall {package} "
            f"(`make venv`) or set {url_var} to use an existing server",
        )


def log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last lines of a log file, for error messages."""
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(log is empty)"


def spawn(
    service: str, argv: Sequence[str], log_path: Path, **popen_kwargs: Any
) -> subprocess.Popen[bytes]:
    """Start a server in its own session, its output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logger.debug("starting %s: %s", service, " ".join(argv))
    with log_path.open("ab") as log:
        try:
            return subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **popen_kwargs,
            )
        except OSError as exc:
            raise StackError(service, f"could not run {argv[0]}: {exc}") from exc


def wait_until_ready(
    service: Service, probe: Callable[[], bool], timeout_s: float = START_TIMEOUT_S
) -> None:
    """Wait until the server really answers; stop it if it never does."""
    try:
        _poll_until_ready(service, probe, timeout_s)
    except BaseException:
        service.stop()
        raise


def _poll_until_ready(
    service: Service, probe: Callable[[], bool], timeout_s: float
) -> None:
    """Poll `probe` until it succeeds; fail if the server exits or times out."""
    proc = service.process
    assert proc is not None, "only a started service can be waited for"
    deadline = time.monotonic() + timeout_s
    while True:
        code = proc.poll()
        if code is not None:
            raise StackError(
                service.name,
                f"exited with code {code} during start-up; last lines of "
                f"{service.log_path}:\n{log_tail(service.log_path)}",
            )
        if probe():
            return
        if time.monotonic() > deadline:
            raise StackError(
                service.name,
                f"did not answer within {timeout_s:.0f} s; last lines of "
                f"{service.log_path}:\n{log_tail(service.log_path)}",
            )
        time.sleep(POLL_INTERVAL_S)


def tcp_open(port: int, timeout_s: float = 0.5) -> bool:
    """Tell whether something accepts TCP connections on the local port."""
    try:
        with socket.create_connection((LOCALHOST, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def processes_mentioning(text: str) -> list[int]:
    """List live processes whose command line or environment contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if text.encode() in blob:
            found.append(int(entry.name))
    return found
