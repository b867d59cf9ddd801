"""`make dev`'s supervisor against real child processes: restart, back off, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler_site.devstack.process import Service, pid_alive
from scheduler_site.devstack.restarts import Backoff, Supervisor, describe_exit
from scheduler_site.devstack.supervise import ChildSpec

DEADLINE_S = 30.0
SLEEPER = ("sleep", "600")


class FakeClock:
    """A monotonic clock the test moves by hand, so back-off needs no waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lines() -> list[str]:
    """Collect what the supervisor reports."""
    return []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def supervisor(
    tmp_path: Path, lines: list[str], clock: FakeClock
) -> Iterator[Supervisor]:
    """A supervisor on a fake clock; every child it started is stopped afterwards."""
    sup = Supervisor(clock=clock, report=lines.append)
    yield sup
    sup.stop()
    assert all(child.process.returncode is not None for child in sup.children)


def spec(
    tmp_path: Path, name: str, argv: tuple[str, ...] = SLEEPER, *, restart: bool = True
) -> ChildSpec:
    return ChildSpec(name, argv, dict(os.environ), tmp_path, tmp_path, restart=restart)


def step_until(supervisor: Supervisor, lines: list[str], count: int) -> str | None:
    """Run supervision passes until `count` lines were reported or it must stop."""
    deadline = time.monotonic() + DEADLINE_S
    while len(lines) < count:
        fatal = supervisor.step()
        if fatal is not None:
            return fatal
        assert time.monotonic() < deadline, f"only {lines} reported"
        time.sleep(0.05)
    return None


def test_backoff_doubles_from_one_second_up_to_thirty() -> None:
    backoff = Backoff()
    delays = [backoff.delay_after(uptime_s=0.5) for _ in range(8)]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]


def test_backoff_starts_over_once_the_child_stayed_up_a_while() -> None:
    backoff = Backoff()
    for _ in range(4):
        backoff.delay_after(uptime_s=0.5)
    assert backoff.delay_after(uptime_s=backoff.stable_after_s) == 1


def test_backoff_of_a_child_crashing_for_days_stays_at_the_maximum() -> None:
    backoff = Backoff()
    delays = {backoff.delay_after(uptime_s=0.1) for _ in range(5000)}
    assert max(delays) == backoff.max_s


def test_exits_are_described_by_code_or_signal_name() -> None:
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"


def test_a_killed_worker_is_restarted_with_a_new_pid_and_one_line(
    tmp_path: Path, supervisor: Supervisor, lines: list[str], clock: FakeClock
) -> None:
    worker = supervisor.start(spec(tmp_path, "worker1"))
    first_pid = worker.process.pid
    os.kill(first_pid, signal.SIGKILL)
    assert step_until(supervisor, lines, 1) is None
    assert lines == [
        f"worker1 (pid {first_pid}) was killed by SIGKILL after 0.0 s up; "
        f"restart 1 in 1 s (log: {tmp_path / 'worker1.log'})"
    ]
    clock.now += 1
    supervisor.step()
    restarted = supervisor.child("worker1")
    assert restarted.process.pid != first_pid
    assert restarted.process.poll() is None
    assert len(lines) == 1, "the restart itself adds no line"


def test_a_crash_looping_child_waits_out_a_growing_backoff_and_counts_restarts(
    tmp_path: Path, supervisor: Supervisor, lines: list[str], clock: FakeClock
) -> None:
    supervisor.start(spec(tmp_path, "beat", ("sh", "-c", "exit 3")))
    for restart, delay in enumerate([1, 2, 4, 8], start=1):
        assert step_until(supervisor, lines, restart) is None
        assert (
            f"exited with code 3 after 0.0 s up; restart {restart} in {delay} s"
            in (lines[-1])
        )
        pid = supervisor.child("beat").process.pid
        clock.now += delay - 0.5
        for _ in range(3):
            supervisor.step()
        assert supervisor.child("beat").process.pid == pid, "restarted too early"
        clock.now += 0.5
        supervisor.step()
        assert supervisor.child("beat").process.pid != pid, "not restarted"


def test_an_essential_child_death_stops_supervision_naming_it(
    tmp_path: Path, supervisor: Supervisor, lines: list[str]
) -> None:
    supervisor.start(spec(tmp_path, "worker1"))
    web = supervisor.start(spec(tmp_path, "web", restart=False))
    os.kill(web.process.pid, signal.SIGKILL)
    fatal = step_until(supervisor, lines, 1)
    assert fatal == (
        f"web (pid {web.process.pid}) was killed by SIGKILL "
        f"(log: {tmp_path / 'web.log'}); the stack cannot run without it"
    )
    assert lines == []
    assert supervisor.child("worker1").process.poll() is None


def test_a_dead_embedded_service_stops_supervision_naming_it(
    tmp_path: Path, lines: list[str], clock: FakeClock
) -> None:
    log = tmp_path / "redis.log"
    with subprocess.Popen(["sleep", "600"], start_new_session=True) as server:
        redis = Service("Redis", "REDIS_URL", "redis://x", server, log)
        supervisor = Supervisor(
            clock=clock, report=lines.append, services=lambda: [redis]
        )
        assert supervisor.step() is None
        server.kill()
        fatal = step_until(supervisor, lines, 1)
    assert fatal == (
        f"Redis (pid {server.pid}) was killed by SIGKILL (log: {log}); "
        "the stack cannot run without it"
    )


def test_a_dead_childs_leftover_group_is_killed_before_its_restart(
    tmp_path: Path, supervisor: Supervisor, lines: list[str], clock: FakeClock
) -> None:
    # The shell leaves a grandchild in the group, as a forking server would.
    family = ("sh", "-c", "sleep 600 & wait")
    first = supervisor.start(spec(tmp_path, "worker1", family))
    deadline = time.monotonic() + DEADLINE_S
    while not (grandchildren := _group_members(first.process.pid)):
        assert time.monotonic() < deadline, "the grandchild never started"
        time.sleep(0.05)
    os.kill(first.process.pid, signal.SIGKILL)
    step_until(supervisor, lines, 1)
    deadline = time.monotonic() + DEADLINE_S
    while any(pid_alive(pid) for pid in grandchildren):
        assert time.monotonic() < deadline, "the dead child's group was left behind"
        time.sleep(0.05)
    clock.now += 1
    supervisor.step()
    assert supervisor.child("worker1").process.pid != first.process.pid


def _group_members(pgid: int) -> list[int]:
    """List live processes of a process group other than its leader."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == pgid:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members
