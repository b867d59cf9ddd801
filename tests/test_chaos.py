"""Short chaos runs inside `make test`: each fault of issue 8 once, lighter load.

`make chaos` runs the full suite (tests/chaos/, results in docs/reliability.md).
Each test gets its own private deployment, as each `make chaos` run does: a
fault's after-effects (a wake-up lost with a killed worker strands a chain of
any topic later) must not show up as the next scenario's failure. Nothing here
is timed: recovery is a figure `make chaos` reports, not an assertion.
"""

import os
from collections.abc import Iterator

import pytest

from tests.chaos.environment import ChaosEnv
from tests.chaos.run import SHORT, RunResult, run_scenario
from tests.chaos.scenarios import SCENARIOS

pytestmark = pytest.mark.chaos
SEED = 8


@pytest.fixture
def chaos() -> Iterator[ChaosEnv]:
    """A private deployment; its logs are kept (and named in failures) only when
    CHAOS_KEEP_LOGS is set."""
    env = ChaosEnv()
    try:
        env.start()
        yield env
    finally:
        env.stop(keep_logs=bool(os.environ.get("CHAOS_KEEP_LOGS")))


def run(env: ChaosEnv, scenario: str) -> RunResult:
    """Run a scenario once with the short sizes."""
    result = run_scenario(env, SCENARIOS[scenario], SHORT, run=1, seed=SEED)
    result.logs = str(env.log_dir)
    return result


def assert_nothing_lost_or_reordered(result: RunResult) -> None:
    """Check issue 8's expectations, except recovery time (a figure, not a test)."""
    f = result.figures
    why = f"{f.details} events: {result.fault['events']} logs: {result.logs}"
    assert f.accepted == result.submitted, result.answers
    assert f.lost == 0, why
    assert f.out_of_order == 0, why
    assert f.dead == 0, why
    assert f.duplicates <= result.duplicates_bound, why
    assert result.bad_5xx == 0, f.details["unexpected_5xx"]


def test_killed_workers_lose_nothing_and_keep_order(chaos: ChaosEnv) -> None:
    assert_nothing_lost_or_reordered(run(chaos, "kill-workers"))


def test_workers_restarted_warm_in_turn_lose_nothing_and_run_nothing_twice(
    chaos: ChaosEnv,
) -> None:
    assert_nothing_lost_or_reordered(run(chaos, "restart-workers"))


def test_a_frozen_holder_loses_nothing_and_keeps_order(chaos: ChaosEnv) -> None:
    assert_nothing_lost_or_reordered(run(chaos, "freeze-holder"))


def test_redis_restarted_empty_loses_nothing_and_keeps_order(chaos: ChaosEnv) -> None:
    assert_nothing_lost_or_reordered(run(chaos, "restart-redis"))


def test_postgres_restarted_loses_nothing_and_keeps_order(chaos: ChaosEnv) -> None:
    assert_nothing_lost_or_reordered(run(chaos, "restart-postgres"))


def test_broker_restarted_empty_loses_nothing_and_keeps_order(
    chaos: ChaosEnv,
) -> None:
    assert_nothing_lost_or_reordered(run(chaos, "restart-broker"))


def test_a_paused_broker_loses_nothing_and_keeps_order(chaos: ChaosEnv) -> None:
    assert_nothing_lost_or_reordered(run(chaos, "pause-broker"))
