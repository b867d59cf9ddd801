"""`manage.py apply_config`: create or update the topics and groups a file declares."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tasks_app.config_file import config_load
from tasks_app.errors import SchedulerError
from tasks_app.services.config import config_apply


class Command(BaseCommand):
    """Apply the scheduler config; running it twice changes nothing the second time."""

    help = (
        "Create or update the topics and consumer groups declared in a TOML file "
        "(default: the SCHEDULER_CONFIG setting). Safe to run at every start."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file",
            type=Path,
            help="The TOML file to apply (default: settings.SCHEDULER_CONFIG).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"] or (
            Path(settings.SCHEDULER_CONFIG) if settings.SCHEDULER_CONFIG else None
        )
        if path is None:
            self.stdout.write("Nothing to apply: SCHEDULER_CONFIG is unset.")
            return
        try:
            report = config_apply(config=config_load(path=path))
        except SchedulerError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Applied {path}:")
        for change in report.changes:
            style = self.style.SUCCESS if change.action != "unchanged" else str
            self.stdout.write(f"  {style(str(change))}")
        for warning in report.warnings:
            self.stdout.write(self.style.WARNING(f"  warning: {warning}"))
        if not report.changed:
            self.stdout.write("Nothing changed.")
