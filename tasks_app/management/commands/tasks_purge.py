"""`manage.py tasks_purge [--days N] [--dead]`: purge finished tasks now."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tasks_app.models import TaskStatus
from tasks_app.services.retention import PURGED_STATUSES, tasks_purge

# No time budget from the command line: an operator asked for all of it.
UNBOUNDED_S = float("inf")


class Command(BaseCommand):
    """Delete finished tasks (and their history) older than a number of days."""

    help = (
        "Delete succeeded and cancelled tasks that finished more than --days days "
        "ago (default SCHEDULER_RETENTION_DAYS), with their history, in batches. "
        "--dead also deletes dead tasks, which the periodic purge keeps."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=float,
            default=settings.SCHEDULER_RETENTION_DAYS,
            help="Age after finishing, in days (default: %(default)s).",
        )
        parser.add_argument(
            "--dead", action="store_true", help="Also delete dead tasks."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] < 0:
            raise CommandError("--days must be 0 or more.")
        statuses = PURGED_STATUSES + ((TaskStatus.DEAD,) if options["dead"] else ())
        purged = tasks_purge(
            older_than=timedelta(days=options["days"]),
            batch=settings.SCHEDULER_PURGE_BATCH,
            budget_s=UNBOUNDED_S,
            statuses=statuses,
        )
        days = options["days"]
        self.stdout.write(f"Deleted {purged} tasks finished over {days} days ago.")
