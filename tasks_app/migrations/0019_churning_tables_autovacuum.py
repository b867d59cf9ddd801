"""Vacuum the task, history and outbox tables early and without throttling.

Each task leaves dead row versions behind: its status changes (HOT updates)
and its outbox row, deleted when published. With PostgreSQL's defaults
(vacuum at 20% dead rows, throttled by a 2 ms cost delay) autovacuum fell
behind during a million-task run and throughput fell by a fifth; with these
settings the rate is higher and falls less (measured runs and their spread:
docs/benchmarks.md, "A million tasks").
"""

from django.db import migrations

TABLES = ("tasks_app_task", "tasks_app_taskevent", "tasks_app_outboxentry")
OPTIONS = {
    "autovacuum_vacuum_scale_factor": "0.01",
    "autovacuum_vacuum_insert_scale_factor": "0.01",
    "autovacuum_vacuum_cost_delay": "0",
}


def _set(table: str) -> str:
    settings = ", ".join(f"{name} = {value}" for name, value in OPTIONS.items())
    return f"ALTER TABLE {table} SET ({settings})"


def _reset(table: str) -> str:
    return f"ALTER TABLE {table} RESET ({', '.join(OPTIONS)})"


class Migration(migrations.Migration):
    dependencies = [("tasks_app", "0018_slice_token_reset")]

    operations = [
        migrations.RunSQL(_set(table), reverse_sql=_reset(table)) for table in TABLES
    ]
