"""Give each topic exactly one consumer group.

The group-topic table becomes an explicit model whose topic is unique. Where a
topic was in several groups, it stays in one: a group other than the default
one first, else the oldest membership; the others are dropped and listed.
"""

import django.db.models.deletion
from django.db import migrations, models


def keep_one_group_per_topic(apps, schema_editor):
    membership = apps.get_model("tasks_app", "GroupTopic")
    rows = membership.objects.select_related("group", "topic").order_by(
        "topic_id", "id"
    )
    by_topic: dict[int, list] = {}
    for row in rows:
        by_topic.setdefault(row.topic_id, []).append(row)
    for rows in by_topic.values():
        if len(rows) < 2:
            continue
        rows.sort(key=lambda row: (row.group.group_id == "default", row.id))
        kept, dropped = rows[0], rows[1:]
        membership.objects.filter(pk__in=[row.pk for row in dropped]).delete()
        print(
            f"\n  topic {kept.topic.name} stays in group {kept.group.group_id}; "
            f"removed from {', '.join(row.group.group_id for row in dropped)}"
        )


class Migration(migrations.Migration):
    dependencies = [("tasks_app", "0004_lane_careful")]

    operations = [
        # The table exists already (Django made it for the many-to-many field).
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="GroupTopic",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "group",
                            models.ForeignKey(
                                db_column="consumergroup_id",
                                on_delete=django.db.models.deletion.CASCADE,
                                to="tasks_app.consumergroup",
                            ),
                        ),
                        (
                            "topic",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                to="tasks_app.topic",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "tasks_app_consumergroup_topics",
                        "unique_together": {("group", "topic")},
                    },
                ),
                migrations.AlterField(
                    model_name="consumergroup",
                    name="topics",
                    field=models.ManyToManyField(
                        blank=True,
                        help_text="Topics this group consumes; a topic belongs to "
                        "one group.",
                        related_name="groups",
                        through="tasks_app.GroupTopic",
                        to="tasks_app.topic",
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(keep_one_group_per_topic, migrations.RunPython.noop),
        migrations.AlterUniqueTogether(name="grouptopic", unique_together=set()),
        migrations.AlterField(
            model_name="grouptopic",
            name="topic",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="membership",
                to="tasks_app.topic",
            ),
        ),
    ]
