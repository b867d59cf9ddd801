"""The topic name's help text names the reserved "__" prefix."""

import tasks_app.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tasks_app", "0009_roles"),
    ]

    operations = [
        migrations.AlterField(
            model_name="topic",
            name="name",
            field=models.CharField(
                help_text="Kafka topic name: 1-249 of [a-zA-Z0-9._-], not '.' or '..', not starting with '__'.",
                max_length=249,
                unique=True,
                validators=[tasks_app.validators.validate_kafka_topic_name],
            ),
        ),
    ]
