"""Per-key order and overlap of handler runs, read from the tests' run records
(tests/handlers.py): for tests of per-key concurrency, in process and on workers."""

from collections import defaultdict

from tasks_app.models import Task
from tests.handlers import runs

KEYS = ("alpha", "bravo", "charlie", "delta")


def _key_of(topic: str) -> dict[str, str]:
    """Map each task id of the topic to its key."""
    rows = Task.objects.filter(topic__name=topic).values_list("uuid", "key")
    return {str(task_id): key for task_id, key in rows}


def events_by_key(topic: str) -> dict[str, list[dict]]:
    """Group the recorded starts and ends of the topic by task key, with offsets."""
    key_of = _key_of(topic)
    grouped: dict[str, list[dict]] = defaultdict(list)
    for event in runs(topic):
        grouped[key_of[event["task"]]].append(event)
    return grouped


def assert_each_key_in_order(topic: str, *, skip: frozenset = frozenset()) -> None:
    """Each key's handlers start in offset order, each after the last one ended
    (or failed). `skip` names (task, attempt) starts that never ended: a killed
    holder's in-flight handlers."""
    for key, events in events_by_key(topic).items():
        phases = [
            "end" if e["phase"] == "fail" else e["phase"]
            for e in events
            if (e["task"], e["attempt"]) not in skip
        ]
        for i in range(0, len(phases), 2):
            assert phases[i : i + 2] == ["start", "end"], f"{key} overlapped"
        offsets = [e["offset"] for e in events if e["phase"] == "end"]
        assert offsets == sorted(offsets), f"{key} ran out of order"


def overlapping_keys(topic: str) -> set[frozenset[str]]:
    """Return the pairs of keys that had handlers running at the same moment."""
    running: set[str] = set()
    pairs: set[frozenset[str]] = set()
    key_of = _key_of(topic)
    # Redis list order is the order the events happened in.
    for event in runs(topic):
        key = key_of[event["task"]]
        if event["phase"] == "start":
            pairs |= {frozenset((key, other)) for other in running}
            running.add(key)
        else:
            running.discard(key)
    return pairs
