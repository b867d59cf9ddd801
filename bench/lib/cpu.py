"""CPU seconds per process of the stack during a benchmark phase: where time goes.

The embedded services are found by the ports in DATABASE_URL, REDIS_URL and
KAFKA_BOOTSTRAP_SERVERS; a process's CPU includes its children (PostgreSQL
backends), live or already reaped.
"""

import os
import statistics
import time
from bisect import bisect_left, bisect_right
from typing import NamedTuple
from urllib.parse import urlsplit

import psutil


def _port(url: str) -> int | None:
    return urlsplit(url if "://" in url else f"kafka://{url}").port


# The embedded broker's name among the services.
BROKER = "kafka"


def service_pids(env: dict[str, str]) -> dict[str, int]:
    """Return {service: pid} for the services of `env` running on this machine."""
    wanted = {
        "postgres": ("postgres", f"-p {_port(env['DATABASE_URL'])} "),
        "redis": ("redis-server", f":{_port(env['REDIS_URL'])}"),
        BROKER: ("tansu", f":{_port(env['KAFKA_BOOTSTRAP_SERVERS'].split(',')[0])} "),
    }
    found: dict[str, int] = {}
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or ()) + " "
        for name, (program, port) in wanted.items():
            if name not in found and program in cmdline and port in cmdline:
                found[name] = process.info["pid"]
    return found


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """Return the CPU seconds of a process so far, with its children's unless told
    otherwise (0 if it is gone)."""
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system
        if not children:
            return total
        total += times.children_user + times.children_system
        for child in root.children(recursive=True):
            try:
                child_times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += child_times.user + child_times.system
        return total
    except psutil.NoSuchProcess:
        return 0.0


class CpuMeter:
    """Measure CPU seconds per named process between `start()` and `stop()`.

    `own` names processes counted without their children (the bench process,
    whose children are the Celery processes measured on their own).
    """

    def __init__(self, pids: dict[str, int], *, own: frozenset[str] = frozenset()):
        self.pids = pids
        self.own = own
        self._before: dict[str, float] = {}

    def read(self) -> dict[str, float]:
        """Return each process's CPU seconds so far."""
        return {
            name: cpu_seconds(pid, children=name not in self.own)
            for name, pid in self.pids.items()
        }

    def start(self) -> None:
        self._before = self.read()

    def stop(self) -> dict[str, float]:
        return {name: s - self._before[name] for name, s in self.read().items()}


def stack_meter(celery_pids: dict[str, int], *, bench: str) -> CpuMeter:
    """A meter of the embedded services, the Celery processes and this process,
    named `bench` and counted without its children (the Celery processes)."""
    pids = {**service_pids(dict(os.environ)), **celery_pids, bench: os.getpid()}
    return CpuMeter(pids, own=frozenset([bench]))


# The fixed piece of work that hints at the machine's speed: a few milliseconds
# of pure Python.
FIXED_WORK_LOOPS = 100_000


def fixed_work_cpu_s() -> float:
    """Return the CPU seconds this thread takes for a fixed piece of work.

    It takes longer when the machine runs slower (another tenant on the core, a
    lower clock), not when the stack does more. A hint, not a measure: it also
    took longer on an idle machine than on a busy one (docs/benchmarks.md).
    """
    start = time.thread_time()
    total = 0
    for number in range(FIXED_WORK_LOOPS):
        total += number * number
    return time.thread_time() - start


class Sample(NamedTuple):
    """One reading: when, each process's CPU seconds so far, and the CPU
    seconds the fixed piece of work took then."""

    at: float
    cpu: dict[str, float]
    fixed_work_s: float


class CpuTimeline:
    """Each process's CPU seconds so far, read at most every `every_s` by whoever
    calls `read()` (a progress check): afterwards, the CPU a task any stretch of
    a long run cost, process by process, and the CPU seconds a fixed piece of
    work took meanwhile (a hint of the machine's speed)."""

    def __init__(self, meter: CpuMeter, *, every_s: float):
        self.meter = meter
        self.every_s = every_s
        self.samples: list[Sample] = []

    def read(self, *, always: bool = False) -> None:
        """Take a sample unless the last is less than `every_s` old (or `always`)."""
        now = time.time()
        if always or not self.samples or now - self.samples[-1].at >= self.every_s:
            self.samples.append(Sample(now, self.meter.read(), fixed_work_cpu_s()))

    @property
    def fixed_work(self) -> list[tuple[float, float]]:
        """When each sample was read, and the fixed work's CPU seconds then."""
        return [(sample.at, sample.fixed_work_s) for sample in self.samples]

    def _span(self, start: float, end: float) -> list[Sample]:
        """The samples from the last at or before `start` to the first at or
        after `end`."""
        times = [sample.at for sample in self.samples]
        first = max(bisect_right(times, start) - 1, 0)
        last = min(bisect_left(times, end), len(times) - 1)
        return self.samples[first : last + 1]

    def fixed_work_s(self, start: float, end: float) -> float:
        """The fixed work's CPU seconds over a stretch (the samples around it, as
        `per_task` takes them): the median, so one unlucky sample does not count."""
        return statistics.median(s.fixed_work_s for s in self._span(start, end))

    def per_task(
        self, finished: list[float], start: float, end: float
    ) -> dict[str, float]:
        """CPU seconds a task per process from the last sample at or before
        `start` to the first at or after `end`, over the tasks that finished in
        between (`finished`: sorted finish times, epoch seconds)."""
        span = self._span(start, end)
        first, last = span[0], span[-1]
        tasks = bisect_right(finished, last.at) - bisect_left(finished, first.at)
        return {
            name: (last.cpu[name] - first.cpu[name]) / tasks if tasks else float("nan")
            for name in last.cpu
        }
