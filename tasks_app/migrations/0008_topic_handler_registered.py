"""Topics name registered handlers only (tasks_app/handlers/registry.py)."""

import tasks_app.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tasks_app", "0007_growth_barrier"),
    ]

    operations = [
        migrations.AlterField(
            model_name="topic",
            name="handler",
            field=models.CharField(
                default="tasks_app.handlers.log_message",
                help_text="Registered name of the handler that runs each task (see docs/handlers.md).",
                max_length=255,
                validators=[tasks_app.validators.validate_registered_handler],
            ),
        ),
    ]
