"""The benchmarks' arithmetic (bench/lib/figures.py): rates over
time, first against last tenth, memory drift after warm-up, hand-offs."""

import math

import pytest

from bench.lib.figures import (
    SliceRow,
    TaskRow,
    first_last_rates,
    handoffs,
    largest_share_shift,
    per_interval,
    rss_drift,
)


def test_finishes_are_counted_per_interval_from_the_start_with_empty_gaps_kept():
    finished = [100.1, 100.9, 101.0, 103.5, 104.99]

    assert per_interval(finished, start=100.0, interval_s=1.0) == [2, 1, 0, 1, 1]


def test_a_finish_before_the_start_counts_in_the_first_interval():
    assert per_interval([99.5, 100.5], start=100.0, interval_s=10.0) == [2]


def test_a_run_that_slows_down_shows_it_in_the_last_tenth():
    # 100 tasks: the first 50 one every 0.1 s, the last 50 one every 0.2 s.
    fast = [n * 0.1 for n in range(50)]
    slow = [fast[-1] + (n + 1) * 0.2 for n in range(50)]

    first, last = first_last_rates(fast + slow, share=0.1)

    # Ten tasks each: nine intervals of 0.1 s and of 0.2 s.
    assert first == pytest.approx(10.0)
    assert last == pytest.approx(5.0)


def test_the_wait_before_the_first_finish_counts_in_neither_tenth():
    steady = [1000.0 + n for n in range(20)]

    assert first_last_rates(steady, share=0.1) == pytest.approx((1.0, 1.0))


def test_too_few_tasks_to_compare_give_nan():
    first, last = first_last_rates([1.0, 2.0, 3.0], share=0.1)

    assert math.isnan(first)
    assert math.isnan(last)


def test_memory_drift_is_the_largest_deviation_from_the_first_sample_after_warm_up():
    samples = [(0.0, 50), (5.0, 100), (6.0, 108), (7.0, 95), (8.0, 103)]

    # Warm-up ends at 4 s: the 50 of start-up is left out; 108 is 8% above 100.
    assert rss_drift(samples, warm_at=4.0) == (100, pytest.approx(8.0))


def test_memory_drift_reads_the_samples_in_time_order():
    samples = [(8.0, 90), (5.0, 100)]

    assert rss_drift(samples, warm_at=5.0) == (100, pytest.approx(10.0))


def test_no_sample_after_warm_up_gives_no_drift():
    warm, drift = rss_drift([(1.0, 100)], warm_at=2.0)

    assert warm == 0
    assert math.isnan(drift)


def test_a_hand_off_splits_at_the_next_slices_start():
    slices = [
        SliceRow("t", 0, "m1", 10.0, 10.3, 5, 0, "deadline"),
        SliceRow("t", 0, "m2", 10.308, 10.6, 5, 5, "drained"),
    ]
    tasks = [TaskRow("t", 6, 0, 5, 1.0, 2.0, 10.318, 10.319, True)]

    [hand] = handoffs(slices, tasks)

    assert hand.gap_s == pytest.approx(0.018)
    assert hand.to_lease_s == pytest.approx(0.008)


def test_a_hand_off_measures_the_lane_idle_from_its_last_handlers_end():
    """Whatever a slice records as its end, the lane waited from the last
    handler's end on it to the next slice's first handler's start."""
    slices = [
        SliceRow("t", 0, "m1", 10.0, 10.3, 2, 0, "deadline"),
        SliceRow("t", 0, "m2", 10.308, 10.6, 1, 2, "drained"),
    ]
    tasks = [
        TaskRow("t", 1, 0, 0, 1.0, 2.0, 10.1, 10.2, True),
        TaskRow("t", 2, 0, 1, 1.0, 2.0, 10.2, 10.295, True),
        TaskRow("t", 3, 0, 2, 1.0, 2.0, 10.318, 10.319, True),
        TaskRow("u", 4, 0, 0, 1.0, 2.0, 10.31, 10.317, True),  # another lane
    ]

    [hand] = handoffs(slices, tasks)

    assert hand.idle_s == pytest.approx(0.023)


def test_the_largest_shift_in_a_processs_share_of_the_cpu_is_named():
    """A machine that slows down moves every process's CPU a task alike and
    their shares not at all; a process whose own cost grows takes a larger
    share: the share tells the two apart."""
    first = {"db": 0.3, "broker": 0.1, "api": 0.6}
    slower_machine = {name: cost * 1.5 for name, cost in first.items()}
    broker_grew = {**first, "broker": 0.3}

    assert largest_share_shift(first, slower_machine)[1] == pytest.approx(0.0)
    name, points = largest_share_shift(first, broker_grew)
    assert name == "broker"
    assert points == pytest.approx(100 * (0.3 / 1.2 - 0.1 / 1.0))
