"""Keep `make dev` up: restart dying workers with a back-off, stop on essential deaths.

The policy of a process supervisor (supervisord, systemd's `Restart=always`),
kept in-process because `make dev` must stay one command with no extra daemon:
a restartable child (beat, the publisher, rotation workers) is started again
after a delay that doubles while it keeps dying young; a child the stack cannot
run without (the web server) or an embedded service ending stops everything.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from scheduler_site.devstack.process import Service
from scheduler_site.devstack.supervise import (
    WATCH_INTERVAL_S,
    Child,
    ChildSpec,
    exit_code,
    kill_group,
    signals_deferred,
    start_child,
    stop_children,
)

# Quick enough that a killed worker is back before anyone wonders; doubling
# keeps a child that crashes at start-up from spinning the CPU or flooding the log.
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
# A child up this long has proven it starts; its next death restarts it quickly.
STABLE_AFTER_S = 30.0
# 2**5 already passes BACKOFF_MAX_S; capping the exponent keeps the float finite.
MAX_DOUBLINGS = 16


def describe_exit(code: int) -> str:
    """Say how a process ended, naming the signal that killed it."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


@dataclass
class Backoff:
    """Delay before a restart: doubles per quick death, starts over after uptime."""

    first_s: float = BACKOFF_FIRST_S
    max_s: float = BACKOFF_MAX_S
    stable_after_s: float = STABLE_AFTER_S
    streak: int = 0

    def delay_after(self, *, uptime_s: float) -> float:
        """Return the delay before restarting a child that ran for `uptime_s`."""
        if uptime_s >= self.stable_after_s:
            self.streak = 0
        delay = min(self.first_s * 2 ** min(self.streak, MAX_DOUBLINGS), self.max_s)
        self.streak += 1
        return delay


@dataclass
class _Slot:
    """One supervised child: its current run and its restart bookkeeping."""

    child: Child
    started_at: float
    backoff: Backoff
    restarts: int = 0
    restart_at: float | None = None  # set while waiting out the back-off


class Supervisor:
    """Start children, restart the restartable ones, report why the stack must stop.

    `services` returns the embedded services to watch (re-read on every pass),
    `report` receives one line per restart, `clock` is injectable for tests.
    """

    def __init__(
        self,
        *,
        services: Callable[[], Iterable[Service]] = tuple,
        report: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._services = services
        self._report = report
        self._clock = clock
        self._slots: dict[str, _Slot] = {}

    @property
    def children(self) -> list[Child]:
        """Return the current run of every child."""
        return [slot.child for slot in self._slots.values()]

    def child(self, name: str) -> Child:
        """Return the current run of the child called `name`."""
        return self._slots[name].child

    def start(self, spec: ChildSpec) -> Child:
        """Start a child and supervise it from now on."""
        with signals_deferred():  # recorded before a Ctrl-C can unwind us
            child = start_child(spec)
            self._slots[spec.name] = _Slot(child, self._clock(), Backoff())
        return child

    def run(self) -> str:
        """Supervise until the stack must stop; return why."""
        while (fatal := self.step()) is None:
            time.sleep(WATCH_INTERVAL_S)
        return fatal

    def step(self) -> str | None:
        """Make one pass: restart what is due, note new deaths, say if all must stop."""
        fatal = self._dead_service()
        for slot in self._slots.values():
            fatal = fatal or self._check(slot)
        return fatal

    def stop(self) -> None:
        """Stop every child and what it left in its process group."""
        stop_children(self.children)

    def _dead_service(self) -> str | None:
        """Name the first embedded service (one we started) that has exited."""
        for service in self._services():
            if service.process is None:
                continue  # reused from the environment: not ours to watch
            code = exit_code(service.process)
            if code is not None:
                kill_group(service.process, signal.SIGKILL)  # e.g. orphaned backends
                return (
                    f"{service.name} (pid {service.pid}) {describe_exit(code)} "
                    f"(log: {service.log_path}); the stack cannot run without it"
                )
        return None

    def _check(self, slot: _Slot) -> str | None:
        """Restart a child whose delay is over, or handle its death if it just died."""
        if slot.restart_at is not None:
            if self._clock() >= slot.restart_at:
                self._restart(slot)
            return None
        code = exit_code(slot.child.process)
        if code is None:
            return None
        child = slot.child
        if not child.spec.restart:
            return (
                f"{child.name} (pid {child.process.pid}) {describe_exit(code)} "
                f"(log: {child.log_path}); the stack cannot run without it"
            )
        self._schedule_restart(slot, code)
        return None

    def _schedule_restart(self, slot: _Slot, code: int) -> None:
        """Clear away the dead run, pick the delay, and say so in one line."""
        child = slot.child
        kill_group(child.process, signal.SIGKILL)  # what it left; leader unreaped
        child.process.wait()
        uptime_s = self._clock() - slot.started_at
        delay_s = slot.backoff.delay_after(uptime_s=uptime_s)
        slot.restarts += 1
        slot.restart_at = self._clock() + delay_s
        self._report(
            f"{child.name} (pid {child.process.pid}) {describe_exit(code)} after "
            f"{uptime_s:.1f} s up; restart {slot.restarts} in {delay_s:g} s "
            f"(log: {child.log_path})"
        )

    def _restart(self, slot: _Slot) -> None:
        """Start the child's next run."""
        with signals_deferred():
            slot.child = start_child(slot.child.spec)
            slot.started_at = self._clock()
            slot.restart_at = None
