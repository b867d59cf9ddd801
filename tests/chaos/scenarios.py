"""The six faults of issue 8 and a rolling restart, each a function that
injects it and says when.

Every scenario blocks while its fault lasts and returns the fault's window
(epoch seconds), what it did, and how many lanes' in-flight work it may have cut
short: the duplicates bound scales with that (see `duplicates_bound`).
"""

from __future__ import annotations

import math
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.chaos.environment import TIMING, ChaosEnv

# tasks_app/services/outcomes.py writes outcomes at least this often, so a
# holder cut short loses (and its successor re-runs) at most this much work.
FLUSH_INTERVAL_S = 0.1
HOLDER_WAIT_S = 15.0


@dataclass(frozen=True)
class FaultPlan:
    """How hard and how long to hit; the short version scales these down."""

    kill_every_s: float = 2.0
    kill_for_s: float = 20.0
    freeze_ttls: float = 3.0
    service_down_s: float = 1.0
    broker_pause_s: float = 2.0  # four slices


@dataclass
class FaultWindow:
    """When the fault began and ended (epoch s), and what was done."""

    start: float
    end: float = 0.0
    events: list[str] = field(default_factory=list)
    interruptions: int = 1

    def note(self, event: str) -> None:
        """Log an event with its offset from the fault's start."""
        self.events.append(f"+{time.time() - self.start:.2f}s {event}")


Inject = Callable[[ChaosEnv, list[str], FaultPlan, random.Random], FaultWindow]


@dataclass(frozen=True)
class Scenario:
    """A named fault, with a one-line description for the report."""

    name: str
    description: str
    inject: Inject


def kill_random_worker_repeatedly(
    env: ChaosEnv, topics: list[str], plan: FaultPlan, rng: random.Random
) -> FaultWindow:
    """SIGKILL a random rotation worker every few seconds; restart it at once,
    under the same name (as a supervisor would)."""
    window = FaultWindow(time.time(), interruptions=0)
    kills = max(1, round(plan.kill_for_s / plan.kill_every_s))
    for index in range(kills):
        name = rng.choice(env.workers)
        held = [topic for topic in topics if env.holder(topic) == name]
        pid = env.stop_worker(name, signal.SIGKILL)
        env.spawn_worker(name)
        window.note(f"SIGKILL {name} (pid {pid}, holding {held or 'nothing'})")
        window.interruptions += 1
        if index < kills - 1:
            time.sleep(plan.kill_every_s)
    window.end = time.time()
    return window


def restart_workers_in_turn(
    env: ChaosEnv, topics: list[str], plan: FaultPlan, rng: random.Random
) -> FaultWindow:
    """Restart the rotation workers one after another with a warm shutdown
    (SIGTERM, as a rolling deploy does), every few seconds: each ends its slice,
    hands its lane on and exits, and starts again under its name.

    A warm shutdown cuts nothing short: no interruption is counted, so the
    duplicates bound is 0.
    """
    window = FaultWindow(time.time(), interruptions=0)
    restarts = max(1, round(plan.kill_for_s / plan.kill_every_s))
    for index in range(restarts):
        name = env.workers[index % len(env.workers)]
        held = [topic for topic in topics if env.holder(topic) == name]
        asked = time.monotonic()
        pid = env.stop_worker(name, signal.SIGTERM)
        exited_s = time.monotonic() - asked
        env.spawn_worker(name)
        window.note(
            f"SIGTERM {name} (pid {pid}, holding {held or 'nothing'}), "
            f"exited in {exited_s:.2f} s"
        )
        if index < restarts - 1:
            time.sleep(plan.kill_every_s)
    window.end = time.time()
    return window


def freeze_lane_holder(
    env: ChaosEnv, topics: list[str], plan: FaultPlan, rng: random.Random
) -> FaultWindow:
    """SIGSTOP the worker holding a lane for several lease TTLs, then SIGCONT."""
    topic, name = _some_holder(env, topics, rng)
    assert env.cluster is not None
    env.cluster.signal(name, signal.SIGSTOP)
    window = FaultWindow(time.time())
    window.note(f"SIGSTOP {name}, holder of {topic}")
    time.sleep(plan.freeze_ttls * TIMING.lease_ttl_s)
    env.cluster.signal(name, signal.SIGCONT)
    window.note(f"SIGCONT {name}")
    window.end = time.time()
    return window


def _some_holder(
    env: ChaosEnv, topics: list[str], rng: random.Random
) -> tuple[str, str]:
    """Wait until a lane of the run has a holder; return (topic, worker name)."""
    deadline = time.monotonic() + HOLDER_WAIT_S
    while time.monotonic() < deadline:
        held = [(topic, env.holder(topic)) for topic in topics]
        candidates = [(topic, name) for topic, name in held if name]
        if candidates:
            return rng.choice(candidates)
        time.sleep(0.01)
    raise RuntimeError(f"no lane of {topics} got a holder in {HOLDER_WAIT_S} s")


def _restart(key: str) -> Inject:
    """Build a scenario that stops one service and starts it again."""

    def restart(
        env: ChaosEnv, topics: list[str], plan: FaultPlan, rng: random.Random
    ) -> FaultWindow:
        window = FaultWindow(time.time(), interruptions=len(topics))
        env.stack.stop_service(key)
        window.note(f"stopped {key}")
        time.sleep(plan.service_down_s)
        env.stack.start_service(key)
        window.note(f"started {key} again (pid {env.stack.services[key].pid})")
        window.end = time.time()
        return window

    return restart


def pause_broker(
    env: ChaosEnv, topics: list[str], plan: FaultPlan, rng: random.Random
) -> FaultWindow:
    """SIGSTOP the broker for longer than a slice, then SIGCONT."""
    broker = env.stack.services["kafka"].process
    assert broker is not None
    window = FaultWindow(time.time(), interruptions=len(topics))
    broker.send_signal(signal.SIGSTOP)
    window.note("SIGSTOP broker")
    time.sleep(plan.broker_pause_s)
    broker.send_signal(signal.SIGCONT)
    window.note("SIGCONT broker")
    window.end = time.time()
    return window


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "kill-workers",
            "SIGKILL a random rotation worker every 2 s, restarted at once",
            kill_random_worker_repeatedly,
        ),
        Scenario(
            "restart-workers",
            "each rotation worker in turn stopped warm (SIGTERM) every 2 s and "
            "started again, as a rolling deploy does",
            restart_workers_in_turn,
        ),
        Scenario(
            "freeze-holder",
            "SIGSTOP a lane's holder for 3 lease TTLs, then SIGCONT",
            freeze_lane_holder,
        ),
        Scenario(
            "restart-redis",
            "Redis stopped and started again empty",
            _restart("redis"),
        ),
        Scenario(
            "restart-postgres",
            "PostgreSQL stopped and started again (data kept)",
            _restart("postgres"),
        ),
        Scenario(
            "restart-broker",
            "broker stopped and started again (memory storage: all lost)",
            _restart("kafka"),
        ),
        Scenario(
            "pause-broker",
            "broker SIGSTOPped for four slices, then SIGCONT",
            pause_broker,
        ),
    )
}


def duplicates_bound(interruptions: int, sleep_ms: int) -> int:
    """Bound the re-runs a fault may cause with today's outcome flushing.

    A holder cut short loses the outcomes of at most one flush interval of
    handler runs plus the one in flight, and a fenced holder may start one more
    handler before it notices; its successor runs those again.
    """
    per_interruption = math.ceil(FLUSH_INTERVAL_S * 1000 / max(sleep_ms, 1)) + 2
    return interruptions * per_interruption
