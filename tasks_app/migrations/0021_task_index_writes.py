"""Two fewer index entries written per task.

The plain index on `topic_id` (Django's default for a foreign key) repeated the
first column of (topic_id, id), which serves the same reads. The index of a
schedule's runs now holds only runs: tasks from the API wrote a NULL entry
that no read looks up. The new index is built before the old one goes, both
without blocking writes (a large table keeps taking tasks meanwhile).
"""

import django.db.models.deletion
from django.contrib.postgres.operations import (
    AddIndexConcurrently,
    RemoveIndexConcurrently,
)
from django.db import migrations, models

# The name migration 0001 gave the foreign key's index.
TOPIC_INDEX = "tasks_app_task_topic_id_5a53ec49"


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("tasks_app", "0020_task_uuid_v7"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="task",
            index=models.Index(
                condition=models.Q(("schedule__isnull", False)),
                fields=["schedule", "id"],
                name="task_schedule_runs",
            ),
        ),
        RemoveIndexConcurrently(model_name="task", name="task_schedule_id"),
        # Only the index goes: Django's own AlterField would also drop and
        # re-add the foreign key, checking every row again under a lock.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="task",
                    name="topic",
                    field=models.ForeignKey(
                        db_index=False,
                        help_text="Topic.",
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="tasks",
                        to="tasks_app.topic",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f"DROP INDEX CONCURRENTLY IF EXISTS {TOPIC_INDEX}",
                    reverse_sql=f"CREATE INDEX CONCURRENTLY {TOPIC_INDEX} "
                    "ON tasks_app_task (topic_id)",
                ),
            ],
        ),
    ]
