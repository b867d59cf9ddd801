"""What a slice reads from PostgreSQL for each batch (issue 11): these reads
come before a hand-off's first handler, and again before every batch."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks_app.models import Task, TaskStatus, Topic
from tests.lane_harness import published_topic
from tests.publishing_helpers import publish_pending
from tests.rotation_support import submit

pytestmark = pytest.mark.django_db(transaction=True)

BATCHES = 3


def _topic_rows(statements: list[str]) -> list[str]:
    return [s for s in statements if '"tasks_app_topic"."handler"' in s]


def _reads_in_a_slice(slice_harness) -> list[str]:
    lane, _ = published_topic(BATCHES * 50)  # the harness reads 50 a batch
    harness = slice_harness()
    with CaptureQueriesContext(connection) as queries:
        record = harness.run_turn(lane)
    assert record is not None
    assert record.messages == BATCHES * 50
    return [q["sql"] for q in queries.captured_queries]


def test_a_slice_reads_its_topics_settings_once_not_once_a_batch(slice_harness):
    statements = _reads_in_a_slice(slice_harness)

    assert len(_topic_rows(statements)) == 1


def _second_slice(harness, lane, count: int = 20) -> tuple[list[Task], list[str]]:
    """Publish `count` more tasks and run the lane's next slice; return them
    and the statements the slice ran."""
    tasks = submit(lane.topic, [{"more": n} for n in range(count)])
    publish_pending()
    with CaptureQueriesContext(connection) as queries:
        record = harness.run_turn(lane)
    assert record is not None
    assert record.messages == count
    statements = [q["sql"] for q in queries.captured_queries]
    return [Task.objects.get(pk=t.pk) for t in tasks], statements


def test_a_members_next_slice_reads_no_topic_row_when_the_topic_is_unchanged(
    slice_harness,
):
    """The fenced claim answers the topic row's version; the row is read again
    only when it changed (a hand-off's first batch waits for that read)."""
    lane, _ = published_topic(20)
    harness = slice_harness()
    harness.run_turn(lane)

    tasks, statements = _second_slice(harness, lane)

    assert _topic_rows(statements) == []
    assert {t.status for t in tasks} == {TaskStatus.SUCCEEDED}


def test_a_topic_changed_by_a_bare_update_applies_from_the_next_slice(slice_harness):
    """`.update()` leaves `updated_at` alone; the row's version still moves."""
    lane, _ = published_topic(20)
    harness = slice_harness()
    harness.run_turn(lane)
    Topic.objects.filter(name=lane.topic).update(handler="tests.no_such_handler")

    tasks, statements = _second_slice(harness, lane)

    assert len(_topic_rows(statements)) == 1
    assert {t.status for t in tasks} == {TaskStatus.DEAD}
    assert "no_such_handler" in tasks[0].error


def test_a_batch_reads_its_tasks_and_the_lost_flag_in_one_statement(slice_harness):
    """One statement, one snapshot: the tasks and the flag the publisher sets
    with their offsets are seen together (services/execution.py)."""
    statements = _reads_in_a_slice(slice_harness)

    task_reads = _task_loads(statements)
    flag_reads = [s for s in statements if s.startswith("SELECT EXISTS")]
    assert len(task_reads) >= BATCHES
    assert all("tasks_app_partitionhead" in s for s in task_reads)
    assert flag_reads == []


def test_every_batch_loads_its_tasks_with_the_same_statement_text(slice_harness):
    """Batches of 20, 50, 50 and 30 tasks send one text, so PostgreSQL prepares
    it once per session: a list of placeholders per id would be a new statement
    for every batch length, planned each time."""
    lane, _ = published_topic(BATCHES * 50)
    harness = slice_harness()
    sent: list[str] = []

    def note(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(note):
        record = harness.run_turn(lane)

    assert record is not None
    assert record.messages == BATCHES * 50
    loads = _task_loads(sent)
    assert len(loads) >= BATCHES + 1
    assert len(set(loads)) == 1


def _task_loads(statements: list[str]) -> list[str]:
    """The statements loading a batch's tasks (with the partition's lost flag)."""
    return [
        s
        for s in statements
        if s.lstrip().startswith("SELECT") and "partition_lost" in s
    ]
