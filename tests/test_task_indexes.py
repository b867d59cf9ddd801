"""The task table's shape: common status changes stay HOT updates (no index
entries written), while the rare statuses have partial indexes of their own;
task ids are time-ordered, so the id index grows at one end."""

import pytest
from django.db import connection, transaction

from tasks_app.models import Task, TaskStatus
from tasks_app.selectors import task_list
from tasks_app.services.tasks import TaskSpec, task_submit_many

pytestmark = pytest.mark.django_db(transaction=True)


def _hot_updates_in_this_transaction() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_stat_get_xact_tuples_hot_updated(%s::regclass)",
            [Task._meta.db_table],
        )
        return cursor.fetchone()[0]


def _submit(topic: str, count: int) -> list[Task]:
    specs = [TaskSpec(topic=topic, message=n) for n in range(count)]
    return task_submit_many(submitted_by=None, specs=specs)


def test_the_common_transitions_are_hot_updates_and_the_rare_ones_are_not(topic_name):
    [task] = _submit(topic_name, 1)
    common = [TaskStatus.PUBLISHED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED]

    with transaction.atomic():
        for status in common:
            Task.objects.filter(pk=task.pk).update(status=status)
        assert _hot_updates_in_this_transaction() == len(common)
        Task.objects.filter(pk=task.pk).update(status=TaskStatus.DEAD)
        assert _hot_updates_in_this_transaction() == len(common), (
            "a task turning dead enters the partial indexes"
        )

    assert Task.objects.get(pk=task.pk).exceptional


def test_a_list_of_dead_tasks_reads_the_partial_index(operator, topic_name):
    tasks = _submit(topic_name, 1000) + _submit(topic_name, 1000)
    dead = [t.pk for t in tasks[::200]]
    Task.objects.filter(pk__in=dead).update(status=TaskStatus.DEAD)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Task._meta.db_table}")

    for filters in ({"status": "dead"}, {"status": "dead", "topic": topic_name}):
        listed = task_list(user=operator, **filters)

        assert sorted(t.pk for t in listed) == sorted(dead)
        assert "task_exceptional" in listed.all()[:50].explain(), filters


CHURNING_TABLES = ("task", "taskevent", "outboxentry")


@pytest.mark.parametrize("table", CHURNING_TABLES)
def test_the_churning_tables_are_vacuumed_early_and_unthrottled(table):
    """Every task leaves dead row versions behind (three status changes, an
    outbox row deleted): with PostgreSQL's defaults autovacuum fell behind and
    a million-task run slowed by a fifth (docs/benchmarks.md)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reloptions FROM pg_class WHERE relname = %s",
            [f"tasks_app_{table}"],
        )
        options = dict(option.split("=") for option in cursor.fetchone()[0] or [])

    assert float(options["autovacuum_vacuum_scale_factor"]) <= 0.01
    assert float(options["autovacuum_vacuum_insert_scale_factor"]) <= 0.01
    assert float(options["autovacuum_vacuum_cost_delay"]) == 0


def test_task_ids_are_time_ordered_so_new_ids_land_at_the_end_of_their_index(
    topic_name,
):
    """Random (version 4) ids scatter every insert, and every batch's lookup by
    id, over the whole index: with a million tasks its pages no longer stay in
    memory, and the pipeline slowed down as the table grew. Version 7 ids
    (RFC 9562) start with the time, so they land next to each other."""
    tasks = _submit(topic_name, 200) + _submit(topic_name, 200)

    ids = [task.uuid for task in tasks]
    assert {task_id.version for task_id in ids} == {7}
    assert sorted(ids[:200])[-1] < sorted(ids[200:])[0]


def _task_indexes() -> dict[str, tuple[list[str], str]]:
    """The task table's B-tree indexes: name -> (columns, condition)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.relname,
                   ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY
                           AS k(attnum, n)
                           JOIN pg_attribute a
                             ON a.attrelid = x.indrelid AND a.attnum = k.attnum
                          ORDER BY k.n),
                   coalesce(pg_get_expr(x.indpred, x.indrelid), '')
              FROM pg_index x
              JOIN pg_class i ON i.oid = x.indexrelid
              JOIN pg_am am ON am.oid = i.relam
             WHERE x.indrelid = %s::regclass AND am.amname = 'btree'
            """,
            [Task._meta.db_table],
        )
        return {name: (columns, condition) for name, columns, condition in cursor}


def test_every_task_index_earns_its_writes():
    """Each insert writes an entry in every index: none may be a plain prefix
    of another with the same condition (that one serves its reads already)."""
    indexes = _task_indexes()

    redundant = [
        (name, other)
        for name, (columns, condition) in indexes.items()
        for other, (longer, other_condition) in indexes.items()
        if name != other
        and condition == other_condition
        and len(columns) < len(longer)
        and longer[: len(columns)] == columns
        and not name.endswith("_pkey")
    ]
    assert redundant == []


def test_tasks_without_a_schedule_have_no_entry_in_the_schedule_index():
    """Most tasks come from the API, not a schedule: their NULL would be one more
    index entry written per task, for reads that always name a schedule."""
    columns, condition = _task_indexes()["task_schedule_runs"]

    assert columns == ["schedule_id", "id"]
    assert condition == "(schedule_id IS NOT NULL)"


def test_a_schedules_runs_are_listed_from_its_index(operator, topic_name):
    _submit(topic_name, 500)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Task._meta.db_table}")

    listed = task_list(user=operator, schedule=1)

    assert "task_schedule_runs" in listed.all()[:50].explain()
