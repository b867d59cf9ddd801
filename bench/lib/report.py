"""Print bench/rotation.py's tables and check the issue's targets."""

import argparse
import os
import platform
from dataclasses import dataclass

from bench.lib import figures, summary
from bench.lib.figures import SliceRow, TaskRow

# Issue 11's targets, printed and summarised alike.
TARGET_CELERY_RATIO = 5.0  # end to end (A, and over HTTP)
TARGET_BACKLOG_RATIO = 10.0  # B
TARGET_GAP_P50_MS = 10.0
TARGET_GAP_P99_MS = 50.0
TARGET_JAIN = 0.98


@dataclass
class Phase:
    """One measured phase: its rows, API time, clock start and CPU use."""

    tasks: list[TaskRow]
    slices: list[SliceRow]
    submit_s: float
    clock_start: float  # epoch s: the first POST, or the moment topics resumed
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        last = max(t.finished for t in self.tasks)
        return len(self.tasks) / (last - self.clock_start)

    @property
    def order_held(self) -> bool:
        return figures.order_held(self.tasks)


@dataclass
class Figures:
    """What the targets are checked on."""

    stream: Phase
    backlog: Phase
    jain: tuple[float, float]  # topics, members
    gaps_ms: dict[str, float]  # label -> p50


def _line(label: str, value: str) -> None:
    print(f"  {label:<58} {value}")


def _ms(values: list[float], pct: float) -> float:
    return figures.percentile(values, pct) * 1000


def _p50_p99(label: str, values: list[float]) -> None:
    _line(f"{label} p50 / p99", f"{_ms(values, 50):,.1f} / {_ms(values, 99):,.1f} ms")


def _rate(label: str, phase: Phase) -> None:
    submit_rate = len(phase.tasks) / phase.submit_s
    _line("API submit", f"{phase.submit_s:.2f} s = {submit_rate:,.0f} tasks/s")
    _line(label, f"{phase.rate:,.0f} tasks/s")


def header(args: argparse.Namespace) -> None:
    """Print the machine and the run's parameters."""
    print(
        f"\nMachine: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{args.tasks:,} tasks in A, {args.backlog_tasks:,} in B, over "
        f"{args.topics} topics, "
        f"{args.workers} rotation workers, slice {args.slice_ms} ms, no-op handler"
    )


def stream(phase: Phase) -> None:
    """Print phase A: tasks submitted while the workers run."""
    print("\nA. End to end: bulk POSTs to /api/tasks/ while the workers run")
    _rate("throughput, first POST -> last finish", phase)
    latencies = [t.finished - t.created for t in phase.tasks]
    _p50_p99("submit -> finish latency", latencies)
    _line("order held", "yes" if phase.order_held else "NO")


def backlog(phase: Phase, topics: list[str], members: list[str]) -> dict[str, float]:
    """Print phase B; return the hand-off figures and the two Jain's indexes."""
    hand = figures.handoffs(phase.slices, phase.tasks)
    working = [s for s in phase.slices if s.messages]
    mean = sum(s.messages for s in working) / max(1, len(working))
    print("\nB. Backlog: POSTed to paused topics, then every topic resumed at once")
    _rate("throughput, resume -> last finish", phase)
    _line("slices with messages / mean messages each", f"{len(working)} / {mean:,.0f}")
    _p50_p99("hand-off gap, member free -> 1st handler", [h.delay_s for h in hand])
    _p50_p99(
        "lane wait, its slice end -> its next 1st handler", [h.gap_s for h in hand]
    )
    topic_j, member_j = _fairness(phase, topics, members)
    _line("order held", "yes" if phase.order_held else "NO")
    return {
        "member": _ms([h.delay_s for h in hand], 50),
        "lane wait": _ms([h.gap_s for h in hand], 50),
        "topic_jain": topic_j,
        "member_jain": member_j,
    }


def _fairness(
    phase: Phase, topics: list[str], members: list[str]
) -> tuple[float, float]:
    """Print the shares of slice time while every topic was backlogged; return
    Jain's index for topics and for members."""
    window = figures.backlogged_window(phase.tasks, phase.clock_start)
    inside = [s for s in phase.slices if s.ended > window[0] and s.started < window[1]]
    span = f"{window[1] - window[0]:.2f} s, {len(inside)} slices"
    _line("fairness window (every topic still backlogged)", span)
    by_topic = figures.busy_shares(inside, window, lambda s: s.topic, topics)
    by_member = figures.busy_shares(inside, window, lambda s: s.member, members)
    return _shares("topic", by_topic), _shares("member", by_member)


def single_lane(phase: Phase) -> float:
    """Print phase C (one lane, the other member free); return the gap's p50 in ms."""
    hand = figures.handoffs(phase.slices, phase.tasks)
    print("\nC. Hand-off: one backlogged topic, so the next member is idle at each end")
    _rate("throughput, resume -> last finish", phase)
    _line("hand-offs", str(len(hand)))
    _p50_p99("hand-off gap, slice end -> next 1st handler", [h.gap_s for h in hand])
    _p50_p99("  of it: up to the lease taken", [h.to_lease_s for h in hand])
    _p50_p99(
        "  of it: fenced claim, 1st fetch, 1st tasks loaded",
        [h.gap_s - h.to_lease_s for h in hand],
    )
    _p50_p99(
        "lane idle, last handler end -> next 1st handler", [h.idle_s for h in hand]
    )
    _line("order held", "yes" if phase.order_held else "NO")
    return _ms([h.gap_s for h in hand], 50)


def _shares(label: str, shares: dict[str, float]) -> float:
    index = figures.jain(shares.values())
    spread = " ".join(f"{share:.1%}" for _, share in sorted(shares.items()))
    _line(f"{label} shares of slice time", spread)
    _line(f"{label} Jain's index", f"{index:.4f}")
    return index


def cpu(phases: dict[str, Phase]) -> None:
    """Print CPU seconds per process for each phase, and per task."""
    print("\nCPU seconds per process during the phase (ms per task)")
    names = list(next(iter(phases.values())).cpu)
    print(f"  {'process':<26}" + "".join(f"{label:>20}" for label in phases))
    for name in [*names, "total"]:
        cells = []
        for phase in phases.values():
            seconds = sum(phase.cpu.values()) if name == "total" else phase.cpu[name]
            cells.append(f"{seconds:7.2f} ({seconds * 1000 / len(phase.tasks):.3f})")
        print(f"  {name:<26}" + "".join(f"{cell:>20}" for cell in cells))


def _target(label: str, figure: str, goal: str, ok: bool) -> None:
    _line(label, f"{figure} (target {goal}: {'met' if ok else 'NOT met'})")


def targets(result: Figures, bare: float, celery: list[float]) -> None:
    """Print the baselines, the ratios and whether each target is met."""
    best = max(celery)
    rounds = ", ".join(f"{rate:,.0f}" for rate in celery)
    print("\nBaselines (same run, same services)")
    _line("bare confluent-kafka produce + consume", f"{bare:,.0f} messages/s")
    _line(
        "plain Celery no-op, Redis broker (best round)",
        f"{best:,.0f} tasks/s ({rounds})",
    )
    print("\nRatios and targets")
    order = result.stream.order_held and result.backlog.order_held
    for label, phase, goal in (
        ("A end to end", result.stream, TARGET_CELERY_RATIO),
        ("B backlog", result.backlog, TARGET_BACKLOG_RATIO),
    ):
        ratio = phase.rate / best
        ok = ratio >= goal and order
        _target(
            f"{label} / plain Celery", f"{ratio:.2f}x", f">= {goal:g}x, order held", ok
        )
        _line(f"{label} / bare Kafka", f"{phase.rate / bare:.3f}")
    for label, p50 in result.gaps_ms.items():
        ok = p50 <= TARGET_GAP_P50_MS
        _target(
            f"hand-off gap p50, {label}",
            f"{p50:.1f} ms",
            f"<= {TARGET_GAP_P50_MS:g} ms",
            ok,
        )
    topic_j, member_j = result.jain
    ok = min(topic_j, member_j) >= TARGET_JAIN
    _target(
        "Jain's index, topics / members",
        f"{topic_j:.4f} / {member_j:.4f}",
        f">= {TARGET_JAIN}",
        ok,
    )


def everything(
    args: argparse.Namespace,
    phases: list[Phase],
    topics: list[str],
    members: list[str],
    bare: float,
    celery: list[float],
) -> None:
    """Print every table: phases A, B, C, CPU use, baselines and targets."""
    a, b, c = phases
    header(args)
    stream(a)
    b_figures = backlog(b, topics, members)
    lanes = f"{args.topics} lanes, {args.workers} members"
    gaps = {
        "C one lane, next member idle": single_lane(c),
        "B member free -> first handler": b_figures["member"],
        f"B lane wait ({lanes})": b_figures["lane wait"],
    }
    cpu({"A end to end": a, "B backlog": b, "C one lane": c})
    jain = (b_figures["topic_jain"], b_figures["member_jain"])
    targets(Figures(a, b, jain, gaps), bare, celery)
    summarise(Figures(a, b, jain, gaps), c, bare, max(celery))


def summarise(result: Figures, single: Phase, bare: float, celery: float) -> None:
    """Add the issue's figures (issue 11's targets) to the run's summary."""
    order = result.stream.order_held and result.backlog.order_held
    for label, phase, goal in (
        ("A end to end", result.stream, TARGET_CELERY_RATIO),
        ("B backlog", result.backlog, TARGET_BACKLOG_RATIO),
    ):
        ratio = phase.rate / celery
        summary.add(
            "rotation",
            f"{label} / plain Celery",
            ratio,
            "x",
            target=f">= {goal:g}x, order held",
            met=ratio >= goal and order,
            detail=f"{phase.rate:,.0f} vs {celery:,.0f} tasks/s",
        )
        summary.add(
            "rotation",
            f"{label} / bare Kafka",
            phase.rate / bare,
            "",
            detail=f"{phase.rate:,.0f} tasks/s vs {bare:,.0f} msg/s",
        )
    latency = [t.finished - t.created for t in result.stream.tasks]
    summary.add(
        "rotation",
        "A submit -> finish p50 (under load)",
        _ms(latency, 50),
        "ms",
        detail=f"p99 {_ms(latency, 99):,.1f} ms",
    )
    for label, phase, delays in (
        ("C one lane, next member idle", single, False),
        ("B member free -> 1st handler", result.backlog, True),
    ):
        hand = figures.handoffs(phase.slices, phase.tasks)
        gaps = [h.delay_s if delays else h.gap_s for h in hand]
        for pct, goal in ((50, TARGET_GAP_P50_MS), (99, TARGET_GAP_P99_MS)):
            value = _ms(gaps, pct)
            summary.add(
                "rotation",
                f"hand-off gap p{pct}, {label}",
                value,
                "ms",
                target=f"<= {goal:g} ms",
                met=value <= goal,
                detail=f"{len(hand)} hand-offs",
            )
    idle = [h.idle_s for h in figures.handoffs(single.slices, single.tasks)]
    summary.add(
        "rotation",
        "C lane idle p50, last handler end -> next 1st handler",
        _ms(idle, 50),
        "ms",
        detail=f"p99 {_ms(idle, 99):,.1f} ms",
    )
    for label, index in zip(("topics", "members"), result.jain, strict=True):
        summary.add(
            "rotation",
            f"B Jain's index, {label}",
            index,
            "",
            target=f">= {TARGET_JAIN:g}",
            met=index >= TARGET_JAIN,
        )
