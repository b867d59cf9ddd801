"""New task ids are time-ordered (UUID version 7): they land at the end of the
unique index instead of anywhere in it. Only the default changes; ids already
given stay as they are."""

import uuid_utils.compat
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tasks_app", "0019_churning_tables_autovacuum"),
    ]

    operations = [
        migrations.AlterField(
            model_name="task",
            name="uuid",
            field=models.UUIDField(
                default=uuid_utils.compat.uuid7,
                editable=False,
                help_text="Public task id.",
                unique=True,
            ),
        ),
    ]
