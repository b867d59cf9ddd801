"""One chaos run: fresh topics, load through the API, the fault, settling, figures."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import secrets
import time
from dataclasses import asdict, dataclass, field

import psycopg

from tests.chaos.api import Answers
from tests.chaos.diagnose import stuck_lanes
from tests.chaos.environment import TIMING, ChaosEnv
from tests.chaos.measure import Figures, FinalRow, figures
from tests.chaos.scenarios import FaultPlan, FaultWindow, Scenario, duplicates_bound
from tests.chaos.workload import Submitter, Workload, topics_create, topics_pause
from tests.handlers import runs_key

SETTLE_POLL_S = 0.25

_FINAL_SQL = """
SELECT t.uuid::text, t.status, extract(epoch FROM t.finished_at)::float8, t.attempts
  FROM tasks_app_task t JOIN tasks_app_topic p ON p.id = t.topic_id
 WHERE p.name = ANY(%s)
"""
# The slices of a run's lanes around its longest stall: who held each lane, how
# long, how much it ran and why each slice ended (a killed holder's is missing).
_STALL_SLICES_SQL = """
SELECT p.name, extract(epoch FROM s.started_at)::float8,
       extract(epoch FROM s.ended_at)::float8, s.member, s.token, s.messages,
       s.end_reason
  FROM tasks_app_slice s JOIN tasks_app_topic p ON p.id = s.topic_id
 WHERE p.name = ANY(%s)
   AND s.ended_at >= to_timestamp(%s) AND s.started_at <= to_timestamp(%s)
 ORDER BY s.started_at
"""
# How far before a stall began the slices are listed.
STALL_LOOKBACK_S = 1.0
_TERMINAL_SQL = """
SELECT count(*) FROM tasks_app_task t JOIN tasks_app_topic p ON p.id = t.topic_id
 WHERE p.name = ANY(%s) AND t.status IN ('succeeded', 'dead', 'cancelled')
"""


@dataclass(frozen=True)
class RunParams:
    """Load, faults and patience of a run.

    The fault starts `fault_at_s` into the submission; with `fault_at_last_s`
    the runs of a scenario spread their faults evenly up to that, so they hit
    the system early (long backlog ahead) and late (little load left) alike.
    """

    workload: Workload
    plan: FaultPlan = field(default_factory=FaultPlan)
    fault_at_s: float = 4.0
    fault_at_last_s: float | None = None
    settle_s: float = 60.0
    # Longer than the publisher may legitimately stall: a batch in flight when
    # the broker dies waits out the delivery timeout plus the flush margin
    # (rotation/kafka/producer.py, 15 s) before it is sent again.
    no_progress_s: float = 20.0

    def for_run(self, run: int, runs: int) -> RunParams:
        """Return these params with run `run`'s (1-based) fault time."""
        if self.fault_at_last_s is None or runs < 2:
            return self
        step = (self.fault_at_last_s - self.fault_at_s) / (runs - 1)
        return dataclasses.replace(self, fault_at_s=self.fault_at_s + step * (run - 1))


# `make chaos`: thousands of tasks, the faults as issue 8 describes them.
FULL = RunParams(Workload(tasks=6000, submit_s=28.0), fault_at_last_s=16.0)
# Inside `make test`: the same faults, shorter and lighter.
SHORT = RunParams(
    Workload(tasks=800, submit_s=8.0),
    FaultPlan(kill_for_s=6.0),
    fault_at_s=2.0,
    settle_s=40.0,
)


@dataclass
class RunResult:
    """Everything one run measured, ready for the report and the JSON file."""

    scenario: str
    run: int
    seed: int
    submitted: int
    figures: Figures
    duplicates_bound: int
    bad_5xx: int
    answers: dict[str, int]
    fault: dict
    logs: str = ""

    @property
    def failures(self) -> list[str]:
        """Name the expectations this run broke (recovery time is reported only)."""
        f = self.figures
        counts = {"lost": f.lost, "out-of-order": f.out_of_order, "dead": f.dead}
        broken = [name for name, value in counts.items() if value]
        if f.duplicates > self.duplicates_bound:
            broken.append("duplicates")
        if self.bad_5xx:
            broken.append("API 5xx")
        if self.submitted != f.accepted:
            broken.append("refused")
        return broken

    @property
    def recovered_in_target(self) -> bool:
        """Whether every lane worked again within one lease TTL plus two ticks."""
        resume = self.figures.resume_s
        return resume is None or resume <= TIMING.recovery_target_s

    def to_json(self) -> dict:
        """Plain data, infinities spelled "never"."""
        data = asdict(self)
        for key in ("resume_s", "drain_s", "max_stall_s"):
            if data["figures"][key] == float("inf"):
                data["figures"][key] = "never"
        data["failures"] = self.failures
        return data


def run_scenario(
    env: ChaosEnv, scenario: Scenario, params: RunParams, *, run: int, seed: int
) -> RunResult:
    """Run one scenario once on fresh topics; pause them afterwards."""
    env.heal()
    answers = Answers()
    run_id = f"{scenario.name}-{run}-{secrets.token_hex(3)}"
    topics = [f"chaos-{run_id}-{i}" for i in range(params.workload.topics)]
    api = env.api(answers)
    topics_create(api, topics, slice_ms=TIMING.slice_ms)
    submitter = Submitter(env.api(answers), topics, params.workload, run_id)
    submitter.start()
    try:
        time.sleep(params.fault_at_s)
        window = scenario.inject(env, topics, params.plan, random.Random(seed))
    finally:
        submitter.join()
    _settle(env, topics, len(submitter.accepted), params)
    result = _result(env, scenario, params, run, seed, submitter, window, answers)
    if result.figures.lost:
        result.figures.details["stuck"] = stuck_lanes(env, topics)
    topics_pause(api, topics)
    return result


def _settle(env: ChaosEnv, topics: list[str], expected: int, params: RunParams) -> None:
    """Wait until every accepted task is terminal, the settle time is over, or
    nothing finished for `no_progress_s`."""
    deadline = time.monotonic() + params.settle_s
    done, moved_at = -1, time.monotonic()
    while time.monotonic() < deadline:
        try:
            now_done = env.query(_TERMINAL_SQL, [topics])[0][0]
        except psycopg.Error:
            now_done = done
        if now_done >= expected:
            return
        if now_done != done:
            done, moved_at = now_done, time.monotonic()
        elif time.monotonic() - moved_at > params.no_progress_s:
            return
        time.sleep(SETTLE_POLL_S)


def _result(
    env: ChaosEnv,
    scenario: Scenario,
    params: RunParams,
    run: int,
    seed: int,
    submitter: Submitter,
    window: FaultWindow,
    answers: Answers,
) -> RunResult:
    """Read the recorder and the final rows, and compute the figures."""
    topics = submitter.topics
    measured = figures(
        submitter.accepted, _recorded(env, topics), _final_rows(env, topics), window
    )
    measured.details["unexpected_5xx"] = answers.unexpected
    measured.details.update(_stall_slices(env, topics, measured, window))
    fault = {
        "at_s": params.fault_at_s,
        "start": window.start,
        "end": window.end,
        "events": window.events,
        "interruptions": window.interruptions,
        "submission": [submitter.started_at, submitter.finished_at],
    }
    return RunResult(
        scenario=scenario.name,
        run=run,
        seed=seed,
        submitted=params.workload.tasks,
        figures=measured,
        duplicates_bound=duplicates_bound(
            window.interruptions, params.workload.sleep_ms
        ),
        bad_5xx=answers.bad_5xx,
        answers=dict(answers.kinds),
        fault=fault,
    )


def _stall_slices(
    env: ChaosEnv, topics: list[str], measured: Figures, window: FaultWindow
) -> dict[str, list[str]]:
    """Describe the slices of the stalled lane while it stalled (what the stall
    is made of), and those of every lane then (what the members did), in
    seconds from the fault's start."""
    if not measured.stall_topic:
        return {}
    start, end = measured.details["stall_window"]
    if math.isinf(end):
        end = time.time()
    rows = env.query(_STALL_SLICES_SQL, [topics, start - STALL_LOOKBACK_S, end])
    described = [
        (
            topic,
            f"{began - window.start:+.2f}..{ended - window.start:+.2f} s {member} "
            f"token {token}: {messages} messages, {reason}",
        )
        for topic, began, ended, member, token, messages, reason in rows
    ]
    return {
        "stall_slices": [
            text for topic, text in described if topic == measured.stall_topic
        ],
        "slices_during_stall": [f"{topic} {text}" for topic, text in described],
    }


def _recorded(env: ChaosEnv, topics: list[str]) -> dict[str, list[dict]]:
    """Read every handler run the recorder holds, by topic."""
    recorder = env.record_redis()
    return {
        topic: [json.loads(raw) for raw in recorder.lrange(runs_key(topic), 0, -1)]
        for topic in topics
    }


def _final_rows(env: ChaosEnv, topics: list[str]) -> dict[str, FinalRow]:
    """Read every task's final status and finish time, by task id."""
    return {
        task_id: FinalRow(status, finished_at, attempts)
        for task_id, status, finished_at, attempts in env.query(_FINAL_SQL, [topics])
    }
