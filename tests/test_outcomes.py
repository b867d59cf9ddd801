"""What a slice writes back for its tasks (services/outcomes.py): results,
errors, times and history, exactly as the handlers gave them, whatever
characters they hold."""

import pytest

from tasks_app.models import TaskEvent, TaskStatus
from tests.lane_harness import published_topic

pytestmark = pytest.mark.django_db(transaction=True)

AWKWARD = [
    {"q": 'say "hi"', "b": "back\\slash", "u": "snowman \u2603 \U0001f600"},
    ["nested", {"deep": [1, 2.5, None, True, False]}, "tab\there"],
    "line\nbreak and {braces} and 'quotes' and ,commas,",
    12345678901234567890,
    -0.000123,
    "",
    {"null": None},
]


def test_results_are_stored_exactly_as_the_handlers_returned_them(slice_harness):
    lane, tasks = published_topic(
        len(AWKWARD), handler="tasks_app.handlers.log_message"
    )
    for task, message in zip(tasks, AWKWARD, strict=True):
        task.message = message
        task.save(update_fields=["message"])

    record = slice_harness().run_turn(lane)

    assert record is not None
    for task, message in zip(tasks, AWKWARD, strict=True):
        task.refresh_from_db()
        assert task.status == TaskStatus.SUCCEEDED
        assert task.result == message
        assert task.started_at <= task.finished_at
        running, succeeded = TaskEvent.objects.filter(task=task).order_by("id")[2:]
        assert (running.status, succeeded.status) == ("running", "succeeded")
        # The history's times are the task's own: one clock reading each.
        assert (running.at, succeeded.at) == (task.started_at, task.finished_at)
        assert (running.attempt, succeeded.worker) == (1, task.worker)


def test_errors_are_stored_exactly_as_the_handlers_raised_them(slice_harness):
    texts = [m for m in AWKWARD if isinstance(m, str) and m]
    lane, tasks = published_topic(
        len(texts), handler="tests.handlers.fail_saying", max_attempts=1
    )
    for task, text in zip(tasks, texts, strict=True):
        task.message = {"error": text}
        task.save(update_fields=["message"])

    slice_harness().run_turn(lane)

    for task, text in zip(tasks, texts, strict=True):
        task.refresh_from_db()
        assert task.status == TaskStatus.DEAD
        assert task.error.rstrip("\n").endswith(f"RuntimeError: {text}")
        dead = TaskEvent.objects.filter(task=task).last()
        assert dead.detail == text
        assert dead.at == task.finished_at
