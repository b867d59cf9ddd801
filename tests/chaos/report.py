"""Write the results: a markdown table (scenario x run) and the JSON behind it."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from tests.chaos.environment import REPO, TIMING
from tests.chaos.run import RunParams, RunResult
from tests.chaos.scenarios import SCENARIOS

COLUMNS = (
    "scenario", "run", "fault at s", "accepted", "lost", "out of order",
    "duplicates (bound)", "dead", "resume s", "drain s", "max stall s", "overlaps",
    "API 5xx (503 named)", "verdict",
)  # fmt: skip


def seconds(value: float | None) -> str:
    """Spell a duration for the table: 1.23, "never", or "-" when not applicable."""
    if value is None:
        return "-"
    return "never" if math.isinf(value) else f"{value:.2f}"


def row(result: RunResult) -> list[str]:
    """One table row; failed expectations are named in the verdict."""
    f = result.figures
    named = sum(n for kind, n in result.answers.items() if kind.startswith("503 "))
    resume = seconds(f.resume_s)
    if not result.recovered_in_target:
        resume += " (over target)"
    verdict = "FAIL: " + ", ".join(result.failures) if result.failures else "pass"
    return [
        result.scenario,
        str(result.run),
        f"{result.fault['at_s']:.0f}",
        f"{f.accepted}/{result.submitted}",
        str(f.lost),
        str(f.out_of_order),
        f"{f.duplicates} ({result.duplicates_bound})",
        str(f.dead),
        resume,
        seconds(f.drain_s),
        seconds(f.max_stall_s),
        str(f.overlapping_runs),
        f"{result.bad_5xx} ({named})",
        verdict,
    ]


def table(results: Sequence[RunResult]) -> str:
    """Render the results as a markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(r)) + " |" for r in results]
    return "\n".join(lines) + "\n"


def _fault_times(params: RunParams) -> str:
    """Say when faults start: a time, or the spread over a scenario's runs."""
    if params.fault_at_last_s is None:
        return f"{params.fault_at_s:.0f} s into the submission"
    return (
        f"between {params.fault_at_s:.0f} s and {params.fault_at_last_s:.0f} s into "
        "the submission, spread evenly over a scenario's runs (first run earliest)"
    )


def summary(results: Sequence[RunResult]) -> str:
    """One line per scenario: runs passed, worst loss, duplicates, recovery range."""
    lines = [
        "| scenario | runs passed | lost (worst run) | duplicates (worst run) "
        "| duplicates per interruption (worst run) | resume s (best-worst) |",
        "|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r.scenario for r in results):
        runs = [r for r in results if r.scenario == name]
        passed = sum(1 for r in runs if not r.failures)
        resumes = [r.figures.resume_s for r in runs if r.figures.resume_s is not None]
        spread = f"{seconds(min(resumes))}-{seconds(max(resumes))}" if resumes else "-"
        worst = max(r.figures.lost for r in runs)
        duplicates = max(r.figures.duplicates for r in runs)
        per_cut = max(r.figures.duplicates / _interruptions(r) for r in runs)
        lines.append(
            f"| {name} | {passed}/{len(runs)} | {worst} | {duplicates} "
            f"| {per_cut:.1f} | {spread} |"
        )
    return "\n".join(lines) + "\n"


def _interruptions(result: RunResult) -> int:
    """How many lanes' work the fault may have cut short (kills, restarts)."""
    return max(1, int(result.fault.get("interruptions", 1)))


def machine() -> str:
    """Describe where the figures were measured."""
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        f"{os.cpu_count()} cores, {memory_gib:.0f} GiB, Python "
        f"{platform.python_version()}, commit {commit or '?'}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


def write_json(path: Path, results: Sequence[RunResult], params: RunParams) -> None:
    """Write every figure, event and diagnosis of every run."""
    data = {
        "machine": machine(),
        "params": {
            "workload": vars(params.workload),
            "plan": vars(params.plan),
            "fault_at_s": params.fault_at_s,
            "fault_at_last_s": params.fault_at_last_s,
            "settle_s": params.settle_s,
            "no_progress_s": params.no_progress_s,
            "lease_ttl_s": TIMING.lease_ttl_s,
            "recovery_target_s": TIMING.recovery_target_s,
        },
        "runs": [r.to_json() for r in results],
    }
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")


def write_markdown(
    path: Path, results: Sequence[RunResult], params: RunParams, elapsed_s: float
) -> None:
    """Write docs/reliability.md: method, machine, how to read, the table, notes."""
    template = (Path(__file__).parent / "reliability_template.md").read_text()
    path.write_text(
        template.format(
            machine=machine(),
            elapsed_min=elapsed_s / 60,
            tasks=params.workload.tasks,
            topics=params.workload.topics,
            sleep_ms=params.workload.sleep_ms,
            submit_s=params.workload.submit_s,
            fault_at=_fault_times(params),
            settle_s=params.settle_s,
            no_progress_s=params.no_progress_s,
            lease_ttl_s=TIMING.lease_ttl_s,
            watchdog_s=TIMING.watchdog_s,
            target_s=TIMING.recovery_target_s,
            slice_ms=TIMING.slice_ms,
            scenarios="\n".join(
                f"- `{s.name}`: {s.description}" for s in SCENARIOS.values()
            ),
            summary=summary(results),
            table=table(results),
            stalls=stalls(results),
            notes=notes(results),
        )
    )


def stalls(results: Sequence[RunResult]) -> str:
    """For each scenario, the run with the longest stall: when it was, the
    fault's events and the stalled lane's slices (from the fault's start)."""
    lines = []
    for name in dict.fromkeys(r.scenario for r in results):
        worst = max(
            (r for r in results if r.scenario == name),
            key=lambda r: r.figures.max_stall_s,
        )
        f = worst.figures
        start, end = f.details.get("stall_window", (0.0, 0.0))
        fault_start = worst.fault["start"]
        until = "never ended" if math.isinf(end) else f"to {end - fault_start:+.2f} s"
        lines.append(
            f"- **{name} #{worst.run}**: {seconds(f.max_stall_s)} s on "
            f"`{f.stall_topic}`, from {start - fault_start:+.2f} s {until}"
        )
        lines += [f"  - {event}" for event in worst.fault["events"]]
        lines += [f"  - slice {text}" for text in f.details.get("stall_slices", [])]
    return "\n".join(lines)


def notes(results: Sequence[RunResult]) -> str:
    """List, per failed run, the fault's events and where tasks got stuck."""
    lines = []
    for result in results:
        if not result.failures:
            continue
        broken = ", ".join(result.failures)
        lines.append(f"- **{result.scenario} #{result.run}** ({broken}):")
        lines += [f"  - {event}" for event in result.fault["events"]]
        details = result.figures.details
        for topic, lost in details.get("lost_by_topic", {}).items():
            lines.append(
                f"  - {topic}: {lost['count']} lost from task {lost['first_n']} on, "
                f"statuses {lost['statuses']}"
            )
        for lane in details.get("stuck", {}).get("lanes", []):
            lines.append(f"  - {stuck_lane(lane)}")
        for sample in details.get("out_of_order_samples", []):
            lines.append(f"  - {sample}")
    return "\n".join(lines) or "No run failed."


def stuck_lane(lane: dict) -> str:
    """Summarise a stuck lane: resume point, recorded end, its turn in Redis."""
    if lane["partition"] is None:
        return f"topic {lane['topic']}: {lane['unfinished']} tasks never published"
    turn = lane["redis"].get("turn")
    queued = "no queued turn"
    if turn:
        data = json.loads(turn)
        state = "running" if data["running"] else "waiting"
        queued = f"turn {state}, woken on {data['member'] or 'the shared queue'}"
    resume = lane["next_offset"]
    where = f"lane {lane['topic']}/{lane['partition']}: " + (
        "never claimed (no lane reads this partition?)"
        if resume is None
        else f"resume point {resume}"
    )
    return (
        f"{where}, recorded end {lane['end_offset']}, {lane['unfinished']} "
        f"unfinished from offset {lane['first_unfinished_offset']} "
        f"({lane['statuses']}); {queued}; lease {lane['redis'].get('lease') or 'free'}"
    )
