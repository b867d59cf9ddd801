"""What a slice reads from PostgreSQL for each batch (issue 11): these reads
come before a hand-off's first handler, and again before every batch."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.lane_harness import published_topic

pytestmark = pytest.mark.django_db(transaction=True)

BATCHES = 3


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

    topic_rows = [s for s in statements if '"tasks_app_topic"."handler"' in s]
    assert len(topic_rows) == 1


def test_a_batch_reads_its_tasks_and_the_lost_flag_in_one_statement(slice_harness):
    """One statement, one snapshot: the tasks and the flag the publisher sets
    with their offsets are seen together (services/execution.py)."""
    statements = _reads_in_a_slice(slice_harness)

    task_reads = [s for s in statements if s.startswith('SELECT "tasks_app_task"')]
    flag_reads = [s for s in statements if s.startswith('SELECT 1 AS "a" FROM')]
    assert len(task_reads) >= BATCHES
    assert all('"tasks_app_partitionhead"' in s for s in task_reads)
    assert flag_reads == []
