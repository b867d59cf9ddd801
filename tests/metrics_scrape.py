"""Reading a /metrics answer in tests: samples by name and labels, and the names
each family exposes (a histogram `x` exposes x_bucket, x_sum and x_count)."""

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, frozenset[tuple[str, str]]]
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def samples(text: str) -> dict[Sample, float]:
    """Map (sample name, labels) to its value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[Sample, float], name: str, **labels: str) -> float:
    """Return one sample's value; fail naming it when it is missing."""
    key = (name, frozenset(labels.items()))
    assert key in found, f"/metrics has no {name}{labels}"
    return found[key]


def exposed_names(text: str) -> set[str]:
    """Every sample name the answer's families can carry, with or without samples."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
    return names
