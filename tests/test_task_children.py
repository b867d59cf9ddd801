"""A task's history and outbox entry: written with the task, deleted with it,
and not checked again row by row at commit."""

import pytest

from tasks_app.models import OutboxEntry, Task, TaskEvent
from tasks_app.services.tasks import TaskSpec, task_submit_many
from tests.db_catalog import trigger_functions

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("model", [TaskEvent, OutboxEntry])
def test_rows_written_with_their_task_are_not_checked_again_per_row(model):
    """Every task writes four events and an outbox entry. A foreign key checked
    each of them at commit with a query of its own: a fifth of PostgreSQL's CPU
    in the end-to-end run, for rows the same statement or transaction had just
    written beside their task (docs/benchmarks.md)."""
    assert trigger_functions(model) == []


def test_deleting_a_task_deletes_its_history_and_outbox_entry(topic_name):
    """The database no longer cascades for them: the ORM's delete does."""
    kept, doomed = task_submit_many(
        submitted_by=None,
        specs=[TaskSpec(topic=topic_name, message=n) for n in range(2)],
    )

    Task.objects.filter(pk=doomed.pk).delete()

    for model in (TaskEvent, OutboxEntry):
        assert not model.objects.filter(task_id=doomed.pk).exists()
        assert model.objects.filter(task_id=kept.pk).exists()
