"""Leave free space in each task page so status changes are HOT updates."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tasks_app", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE tasks_app_task SET (fillfactor = 50)",
            reverse_sql="ALTER TABLE tasks_app_task RESET (fillfactor)",
        )
    ]
