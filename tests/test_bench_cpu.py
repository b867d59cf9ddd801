"""The million-task run's CPU a task over a stretch of the run
(bench/lib/cpu.py `CpuTimeline`), from samples read with the progress."""

import os

import pytest

from bench.lib.cpu import CpuMeter, CpuTimeline, Sample


def _timeline(samples: list[tuple[float, dict[str, float]]]) -> CpuTimeline:
    timeline = CpuTimeline(CpuMeter({"bench": os.getpid()}), every_s=1.0)
    timeline.samples = [Sample(at, cpu, 0.0) for at, cpu in samples]
    return timeline


def test_cpu_a_task_spans_the_samples_around_the_stretch():
    """The stretch 1.2-1.8 s lies between the samples at 1 s and 2 s: the CPU
    between those (2 s) over the tasks that finished between them (2)."""
    timeline = _timeline([(0.0, {"a": 0.0}), (1.0, {"a": 1.0}), (2.0, {"a": 3.0})])

    assert timeline.per_task([0.5, 1.5, 1.6, 2.5], 1.2, 1.8) == {"a": 1.0}


def test_a_stretch_past_the_samples_takes_the_first_and_last():
    timeline = _timeline([(1.0, {"a": 1.0}), (2.0, {"a": 5.0})])

    assert timeline.per_task([1.0, 1.5, 2.0, 2.5], 0.0, 9.0) == {
        "a": pytest.approx(4 / 3)
    }


def test_reads_no_more_often_than_asked():
    timeline = CpuTimeline(CpuMeter({"bench": os.getpid()}), every_s=60.0)

    timeline.read()
    timeline.read()

    assert len(timeline.samples) == 1
    assert timeline.samples[0][1]["bench"] > 0


def test_the_machines_speed_is_read_with_each_sample():
    """Each sample also times a fixed piece of work (CPU seconds): a machine
    that runs slower takes longer for it, whatever the stack does."""
    timeline = CpuTimeline(CpuMeter({"bench": os.getpid()}), every_s=0.0)

    timeline.read()
    timeline.read()

    assert len(timeline.fixed_work) == 2
    assert all(seconds > 0 for _, seconds in timeline.fixed_work)


def test_the_fixed_work_over_a_stretch_is_the_median_of_its_samples():
    """From the sample at or before the stretch to the one at or after it, as
    for the CPU a task; the median, so one descheduled sample does not count."""
    timeline = _timeline([])
    timeline.samples = [
        Sample(at, {}, seconds)
        for at, seconds in [(0.0, 9.0), (1.0, 1.0), (2.0, 3.0), (3.0, 2.0), (4.0, 9.0)]
    ]

    assert timeline.fixed_work_s(1.5, 2.5) == 2.0
    assert timeline.fixed_work_s(1.0, 3.0) == 2.0
