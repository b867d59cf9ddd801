"""Helpers for the end-to-end rotation tests: topics, submissions, waiting, slices."""

from django.db.models import Count, Q

from tasks_app.models import Slice, Task, TaskEvent, TaskStatus, Topic
from tasks_app.services.tasks import TaskSpec, task_submit_many
from tasks_app.services.topics import topic_create
from tests.cluster import wait_for

RECORD_HANDLER = "tests.handlers.record"
SUBMIT_CHUNK = 1000


def make_topic(name: str, **policy) -> Topic:
    """Create a topic (in Kafka too) whose tasks run the recording handler."""
    policy.setdefault("handler", RECORD_HANDLER)
    return topic_create(name=name, **policy)


def submit(topic: str, messages: list) -> list[Task]:
    """Submit messages to a topic in order, in bulk chunks; return the tasks."""
    tasks: list[Task] = []
    for start in range(0, len(messages), SUBMIT_CHUNK):
        specs = [
            TaskSpec(topic=topic, message=m)
            for m in messages[start : start + SUBMIT_CHUNK]
        ]
        tasks += task_submit_many(submitted_by=None, specs=specs)
    return tasks


def wait_all_finished(topic: str, count: int, *, timeout_s: float = 120.0) -> None:
    """Wait until `count` tasks of the topic are succeeded or dead."""
    finished = Q(status__in=[TaskStatus.SUCCEEDED, TaskStatus.DEAD])

    def done() -> bool:
        return Task.objects.filter(finished, topic__name=topic).count() >= count

    wait_for(done, timeout_s=timeout_s, what=f"{count} tasks of {topic} to finish")


def lane_slices(topic: str) -> list[Slice]:
    """Return the topic's recorded slices in start order."""
    return list(Slice.objects.filter(topic__name=topic).order_by("started_at", "id"))


def succeeded_event_counts(topic: str) -> set[int]:
    """Return the distinct numbers of `succeeded` events per task of the topic."""
    counts = (
        TaskEvent.objects.filter(task__topic__name=topic, status=TaskStatus.SUCCEEDED)
        .values("task")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
    )
    return set(counts)


def busy_seconds(slices: list[Slice], start: float, end: float) -> float:
    """Sum the time the slices spent inside the window [start, end] (epoch s)."""
    total = 0.0
    for s in slices:
        lo = max(s.started_at.timestamp(), start)
        hi = min(s.ended_at.timestamp(), end)
        total += max(0.0, hi - lo)
    return total
