"""One chaos run: fresh topics, load through the API, the fault, settling, figures."""

from __future__ import annotations

import json
import random
import secrets
import time
from dataclasses import asdict, dataclass, field

import psycopg

from tests.chaos.api import Answers
from tests.chaos.diagnose import stuck_lanes
from tests.chaos.environment import TIMING, ChaosEnv
from tests.chaos.handlers import runs_key
from tests.chaos.measure import FinalRow, figures
from tests.chaos.scenarios import FaultPlan, FaultWindow, Scenario, duplicates_bound
from tests.chaos.workload import Submitter, Workload, topics_create, topics_pause

SETTLE_POLL_S = 0.25

_FINAL_SQL = """
SELECT t.uuid::text, t.status, extract(epoch FROM t.finished_at)::float8, t.attempts
  FROM tasks_app_task t JOIN tasks_app_topic p ON p.id = t.topic_id
 WHERE p.name = ANY(%s)
"""
_TERMINAL_SQL = """
SELECT count(*) FROM tasks_app_task t JOIN tasks_app_topic p ON p.id = t.topic_id
 WHERE p.name = ANY(%s) AND t.status IN ('succeeded', 'dead', 'cancelled')
"""


@dataclass(frozen=True)
class RunParams:
    """Load, faults and patience of a run."""

    workload: Workload
    plan: FaultPlan = FaultPlan()
    fault_at_s: float = 4.0
    settle_s: float = 60.0
    no_progress_s: float = 20.0


# `make chaos`: thousands of tasks, the faults as issue 8 describes them.
FULL = RunParams(Workload(tasks=6000, submit_s=28.0))
# Inside `make test`: the same faults, shorter and lighter.
SHORT = RunParams(
    Workload(tasks=800, submit_s=8.0),
    FaultPlan(kill_for_s=6.0),
    fault_at_s=2.0,
    settle_s=40.0,
    no_progress_s=10.0,
)


@dataclass
class RunResult:
    """Everything one run measured, ready for the report and the JSON file."""

    scenario: str
    run: int
    seed: int
    submitted: int
    accepted: int
    lost: int
    out_of_order: int
    duplicates: int
    duplicates_bound: int
    dead: int
    resume_s: float | None
    drain_s: float | None
    max_stall_s: float
    stall_topic: str
    overlapping_runs: int
    bad_5xx: int
    answers: dict[str, int]
    fault: dict
    details: dict = field(default_factory=dict)
    logs: str = ""

    @property
    def failures(self) -> list[str]:
        """Name the expectations this run broke (recovery time is reported only)."""
        broken = [
            name
            for name, value in (
                ("lost", self.lost),
                ("out-of-order", self.out_of_order),
                ("dead", self.dead),
                ("API 5xx", self.bad_5xx),
            )
            if value
        ]
        if self.duplicates > self.duplicates_bound:
            broken.append("duplicates")
        if self.submitted != self.accepted:
            broken.append("refused")
        return broken

    @property
    def recovered_in_target(self) -> bool:
        """Whether every lane worked again within one lease TTL plus two ticks."""
        return self.resume_s is None or self.resume_s <= TIMING.recovery_target_s

    def to_json(self) -> dict:
        """Plain data, infinities spelled "never"."""
        data = asdict(self)
        for key in ("resume_s", "drain_s", "max_stall_s"):
            if data[key] == float("inf"):
                data[key] = "never"
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
    if result.lost:
        result.details["stuck"] = stuck_lanes(env, topics)
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
    recorder = env.record_redis()
    entries = {
        topic: [json.loads(raw) for raw in recorder.lrange(runs_key(topic), 0, -1)]
        for topic in submitter.topics
    }
    rows = {
        task_id: FinalRow(status, finished_at, attempts)
        for task_id, status, finished_at, attempts in env.query(
            _FINAL_SQL, [submitter.topics]
        )
    }
    measured = figures(submitter.accepted, entries, rows, window)
    return RunResult(
        scenario=scenario.name,
        run=run,
        seed=seed,
        submitted=params.workload.tasks,
        accepted=measured.accepted,
        lost=measured.lost,
        out_of_order=measured.out_of_order,
        duplicates=measured.duplicates,
        duplicates_bound=duplicates_bound(
            window.interruptions, params.workload.sleep_ms
        ),
        dead=measured.dead,
        resume_s=measured.resume_s,
        drain_s=measured.drain_s,
        max_stall_s=measured.max_stall_s,
        stall_topic=measured.stall_topic,
        overlapping_runs=measured.overlapping_runs,
        bad_5xx=answers.bad_5xx,
        answers=dict(answers.kinds),
        fault={
            "start": window.start,
            "end": window.end,
            "events": window.events,
            "submission_started": submitter.started_at,
            "submission_ended": submitter.finished_at,
        },
        details={**measured.details, "unexpected_5xx": answers.unexpected},
    )
