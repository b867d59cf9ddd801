"""The chaos suite's arithmetic on made-up runs: what counts as lost, out of
order, duplicated, and how recovery is timed (tests/chaos/measure.py, api.py)."""

import math

from tests.chaos.api import Answers, classify
from tests.chaos.measure import Figures, FinalRow, figures
from tests.chaos.report import stalls
from tests.chaos.run import RunResult
from tests.chaos.scenarios import FaultWindow
from tests.chaos.workload import Accepted

TOPIC = "t"


def accepted(count: int, at: float = 0.0) -> dict[int, Accepted]:
    return {n: Accepted(n, f"task-{n}", TOPIC, at) for n in range(count)}


def run(n: int, start: float, end: float | None, pid: int = 1) -> list[dict]:
    entries = [{"task": f"task-{n}", "phase": "start", "t": start, "pid": pid}]
    if end is not None:
        entries.append({"task": f"task-{n}", "phase": "end", "t": end, "pid": pid})
    return entries


def measure(
    tasks: dict[int, Accepted],
    entries: list[dict],
    window: FaultWindow | None = None,
    statuses: dict[int, str] | None = None,
) -> Figures:
    ends: dict[str, float] = {}
    for e in entries:
        if e["phase"] == "end":
            ends.setdefault(e["task"], e["t"])
    statuses = statuses or {}
    rows = {
        a.task_id: FinalRow(
            statuses.get(a.n, "succeeded" if a.task_id in ends else "published"),
            ends.get(a.task_id),
            1,
        )
        for a in tasks.values()
    }
    return figures(tasks, {TOPIC: entries}, rows, window or FaultWindow(0.0, 0.0))


def test_tasks_run_one_after_another_are_neither_lost_nor_out_of_order() -> None:
    figures_ = measure(accepted(3), run(0, 1, 2) + run(1, 2, 3) + run(2, 3, 4))
    assert (figures_.lost, figures_.out_of_order, figures_.duplicates) == (0, 0, 0)
    assert figures_.overlapping_runs == 0


def test_a_task_started_before_its_predecessor_ended_is_out_of_order() -> None:
    figures_ = measure(accepted(2), run(0, 1, 3) + run(1, 2, 4, pid=2))
    assert figures_.out_of_order == 1
    assert figures_.overlapping_runs == 1


def test_a_skipped_task_is_lost_and_its_successor_out_of_order() -> None:
    figures_ = measure(accepted(3), run(0, 1, 2) + run(2, 3, 4))
    assert figures_.lost == 1
    assert figures_.out_of_order == 1
    assert figures_.details["lost_by_topic"][TOPIC]["first_n"] == 1


def test_a_rerun_after_a_crash_is_a_duplicate_not_disorder() -> None:
    entries = run(0, 1, None, pid=1) + run(0, 5, 6, pid=2) + run(1, 6, 7, pid=2)
    figures_ = measure(accepted(2), entries)
    assert (figures_.duplicates, figures_.out_of_order, figures_.lost) == (1, 0, 0)


def test_dead_tasks_are_counted_and_not_lost() -> None:
    figures_ = measure(accepted(1), run(0, 1, 2), statuses={0: "dead"})
    assert (figures_.dead, figures_.lost) == (1, 0)


def test_resume_runs_from_the_fault_end_to_every_waiting_lanes_next_finish() -> None:
    window = FaultWindow(start=10.0, end=12.0)
    entries = run(0, 9, 9.5) + run(1, 13, 13.5) + run(2, 14, 14.5)
    figures_ = measure(accepted(3, at=8.0), entries, window)
    assert figures_.resume_s == 1.5
    assert figures_.drain_s == 2.5
    assert figures_.max_stall_s == 4.0  # task 1 waited from 9.5 to 13.5
    assert figures_.details["stall_window"] == [9.5, 13.5]


def test_the_report_shows_each_scenarios_longest_stall_with_its_slices() -> None:
    window = FaultWindow(start=10.0, end=12.0, events=["+0.00s SIGKILL w1"])
    entries = run(0, 9, 9.5) + run(1, 13, 13.5)
    results = [
        RunResult(
            scenario="kill-workers",
            run=n,
            seed=n,
            submitted=2,
            figures=measure(accepted(2, at=8.0), entries, window),
            duplicates_bound=0,
            bad_5xx=0,
            answers={},
            fault={"start": window.start, "events": window.events},
        )
        for n in (1, 2)
    ]
    results[1].figures.max_stall_s += 1  # the worse of the two
    results[1].figures.details["stall_slices"] = ["+3.00..+3.50 s w2 token 7: ..."]

    assert stalls(results).splitlines() == [
        f"- **kill-workers #2**: 5.00 s on `{TOPIC}`, from -0.50 s to +3.50 s",
        "  - +0.00s SIGKILL w1",
        "  - slice +3.00..+3.50 s w2 token 7: ...",
    ]


def test_a_lane_that_never_finishes_again_never_resumes() -> None:
    window = FaultWindow(start=10.0, end=12.0)
    figures_ = measure(accepted(2, at=8.0), run(0, 9, 9.5), window)
    assert math.isinf(figures_.resume_s or 0)
    assert math.isinf(figures_.max_stall_s)


def test_a_lane_with_nothing_waiting_at_the_fault_end_has_no_resume_time() -> None:
    window = FaultWindow(start=10.0, end=12.0)
    figures_ = measure(accepted(1), run(0, 1, 2), window)
    assert figures_.resume_s is None


def test_only_a_503_that_names_its_service_is_an_expected_5xx() -> None:
    answers = Answers()
    answers.add(classify(503, {"detail": "down", "service": "postgresql"}))
    answers.add(classify(503, {"detail": "down"}))
    answers.add(classify(500, None))
    answers.add(classify(201, [{}]))
    assert answers.kinds["503 postgresql"] == 1
    assert answers.bad_5xx == 2
