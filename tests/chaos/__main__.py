"""Run the chaos suite: every scenario N times, then write the table and JSON.

    python -m tests.chaos --runs 5 --markdown docs/reliability.md

Each run gets its own private deployment (see environment.py) unless
--shared-stack is given; the logs of runs that failed are kept and named.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType

from tests.chaos import report
from tests.chaos.environment import ChaosEnv
from tests.chaos.run import FULL, SHORT, RunParams, RunResult, run_scenario
from tests.chaos.scenarios import SCENARIOS, Scenario


def parse_args() -> argparse.Namespace:
    """Read the knobs; defaults are what `make chaos` runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per scenario")
    parser.add_argument("--tasks", type=int, help="tasks per run (default: 6000)")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable)",
    )
    parser.add_argument("--short", action="store_true", help="the make-test sizes")
    parser.add_argument("--shared-stack", action="store_true")
    parser.add_argument("--seed", type=int, default=8, help="base of each run's seed")
    parser.add_argument("--markdown", type=Path, help="write the report here")
    parser.add_argument("--json", type=Path, help="write every figure here")
    return parser.parse_args()


def params_from(args: argparse.Namespace) -> RunParams:
    """Pick the full or short sizes, with --tasks overriding the task count."""
    params = SHORT if args.short else FULL
    if args.tasks:
        workload = dataclasses.replace(params.workload, tasks=args.tasks)
        params = dataclasses.replace(params, workload=workload)
    return params


def run_once(
    env: ChaosEnv | None, scenario: Scenario, params: RunParams, run: int, seed: int
) -> RunResult:
    """Run in `env`, or in a fresh deployment kept only if the run failed."""
    if env is not None:
        return run_scenario(env, scenario, params, run=run, seed=seed)
    fresh = ChaosEnv()
    result: RunResult | None = None
    try:
        fresh.start()
        result = run_scenario(fresh, scenario, params, run=run, seed=seed)
    finally:
        kept = fresh.stop(keep_logs=result is None or bool(result.failures))
    result.logs = str(kept or "")
    return result


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into SystemExit, so every started process is stopped on the
    way out (SIGINT may be ignored: background jobs of a script ignore it)."""
    sys.exit(128 + signum)


def main() -> int:
    """Run the suite; exit 1 if any run broke an expectation."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = parse_args()
    params = params_from(args)
    scenarios = [SCENARIOS[name] for name in args.scenario or SCENARIOS]
    shared = ChaosEnv() if args.shared_stack else None
    results: list[RunResult] = []
    began = time.monotonic()
    try:
        if shared is not None:
            shared.start()
        for scenario in scenarios:
            for run in range(1, args.runs + 1):
                seed = args.seed * 1000 + run
                run_params = params.for_run(run, args.runs)
                try:
                    result = run_once(shared, scenario, run_params, run, seed)
                except Exception:  # noqa: BLE001 - one broken run must not end the suite
                    traceback.print_exc()
                    print(f"{scenario.name} #{run}: harness error (above)", flush=True)
                    continue
                results.append(result)
                print("| " + " | ".join(report.row(result)) + " |", flush=True)
    finally:
        if shared is not None:
            kept = shared.stop(keep_logs=any(r.failures for r in results))
            if kept:
                print(f"logs kept in {kept}")
    elapsed = time.monotonic() - began
    if args.json:
        report.write_json(args.json, results, params)
    if args.markdown:
        report.write_markdown(args.markdown, results, params, elapsed)
    print(report.table(results))
    print(f"{len(results)} runs in {elapsed / 60:.1f} min")
    return 1 if any(r.failures for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
