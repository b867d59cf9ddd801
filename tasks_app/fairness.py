"""Fair-share arithmetic: weighted water-filling and Jain's fairness index.

DESIGN invariant 6 promises each backlogged lane processing time in proportion
to its topic's weight. A lane is held by one member at a time, though, so a
lane can never use more than the whole window: with as many members as lanes
every lane runs all the time whatever the weights, and that is fair too. The
fair share is therefore the weighted max-min share (water-filling), not the raw
weight ratio; Jain's index then compares what each lane got with it.
"""

from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

# Below this many seconds a share is treated as fully handed out.
EPSILON_S = 1e-9


def weighted_fill(
    capacity: float, demands: Mapping[K, float], weights: Mapping[K, float]
) -> dict[K, float]:
    """Share `capacity` in proportion to `weights`, never giving a key more than
    its demand; what a capped key leaves over goes to the others, by weight."""
    given = dict.fromkeys(demands, 0.0)
    open_keys = {key for key, demand in demands.items() if demand > 0}
    left = capacity
    while open_keys and left > EPSILON_S:
        total_weight = sum(weights[key] for key in open_keys)
        offer = {key: left * weights[key] / total_weight for key in open_keys}
        capped = {key for key in open_keys if given[key] + offer[key] >= demands[key]}
        if not capped:
            for key in open_keys:
                given[key] += offer[key]
            break
        for key in capped:
            left -= demands[key] - given[key]
            given[key] = demands[key]
        open_keys -= capped
    return given


def jain_index(values: Iterable[float]) -> float | None:
    """Return Jain's index, (sum x)^2 / (n * sum x^2): 1 when all are equal,
    1/n when one takes everything; None when there is nothing to compare."""
    xs = list(values)
    squares = sum(x * x for x in xs)
    if not xs or squares == 0:
        return None
    return sum(xs) ** 2 / (len(xs) * squares)
