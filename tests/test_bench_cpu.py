"""The million-task run's CPU a task over a stretch of the run
(bench/lib/cpu.py `CpuTimeline`), from samples read with the progress."""

import os

import pytest

from bench.lib.cpu import CpuMeter, CpuTimeline


def _timeline(samples: list[tuple[float, dict[str, float]]]) -> CpuTimeline:
    timeline = CpuTimeline(CpuMeter({"bench": os.getpid()}), every_s=1.0)
    timeline.samples = samples
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
