"""Roles: the submitters and operators groups, task owners indexed, view_rotation."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from tasks_app.roles import roles_ensure


def create_role_groups(apps, schema_editor):
    """Create both groups with their permissions (tasks_app/roles.py)."""
    roles_ensure(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("tasks_app", "0008_topic_handler_registered"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="lanestate",
            options={
                "permissions": [("view_rotation", "Can view live members and stats")]
            },
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(fields=["submitted_by", "id"], name="task_owner_id"),
        ),
        migrations.AlterField(
            model_name="task",
            name="submitted_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                help_text="Owner: the user who submitted it; empty for system "
                "tasks, which only operators see.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(create_role_groups, migrations.RunPython.noop),
    ]
