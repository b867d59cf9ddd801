"""`manage.py scheduler_status [--watch [SECONDS]] [--json]`: members and lanes."""

import itertools
import shutil
import time
from collections.abc import Iterable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import InterfaceError, OperationalError, close_old_connections

from tasks_app.errors import ServiceUnavailable
from tasks_app.management.status_table import status_json, status_text
from tasks_app.selectors.status import SchedulerStatus, scheduler_status

DEFAULT_WATCH_S = 2.0
DEFAULT_WINDOW_MIN = 5.0
MINUTE_S = 60
# Piped output has no terminal width: wide enough that no column is cut.
PIPE_WIDTH = 200
CLEAR_SCREEN = "\x1b[H\x1b[2J"


class Command(BaseCommand):
    """Print the members and lanes as tables or JSON, once or every few seconds."""

    help = (
        "Show the rotation's members (host, lane now, slices, messages and busy "
        "time over the last minutes, last heartbeat) and lanes (paused, lag, "
        "resume point, holder from its lease, last slice): the dashboard's "
        "members and lanes, in a terminal."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--watch",
            nargs="?",
            type=float,
            const=DEFAULT_WATCH_S,
            metavar="SECONDS",
            help=f"Redraw every SECONDS (default {DEFAULT_WATCH_S:g}) until Ctrl-C.",
        )
        parser.add_argument(
            "--count",
            type=int,
            metavar="N",
            help="With --watch, stop after N draws.",
        )
        parser.add_argument(
            "--minutes",
            type=float,
            default=DEFAULT_WINDOW_MIN,
            help=f"Count members' work over this many minutes "
            f"(default {DEFAULT_WINDOW_MIN:g}).",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print JSON, one line per draw."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        watch_s, count = options["watch"], options["count"]
        if (watch_s is not None and watch_s <= 0) or options["minutes"] <= 0:
            raise CommandError("--watch and --minutes take a positive number.")
        if count is not None and (count < 1 or watch_s is None):
            raise CommandError("--count takes a positive number, with --watch.")
        draws: Iterable[int] = range(1)
        if watch_s is not None:
            draws = range(count) if count else itertools.count()
        try:
            for draw in draws:
                if draw:
                    time.sleep(watch_s)
                    close_old_connections()  # replace one a lost server broke
                self._draw(options, watching=watch_s is not None)
        except KeyboardInterrupt:
            self.stdout.write("")  # leave the prompt on a line of its own

    def _draw(self, options: dict[str, Any], *, watching: bool) -> None:
        """Read the status and print it; while watching, a lost service is shown
        and the next draw tries again."""
        try:
            status = _status_read(minutes=options["minutes"])
        except ServiceUnavailable as exc:
            if not watching:
                raise CommandError(exc.message) from exc
            self.stderr.write(exc.message)
            return
        if options["json"]:
            self.stdout.write(status_json(status))
            return
        tty = self.stdout.isatty()
        if tty and watching:
            self.stdout.write(CLEAR_SCREEN, ending="")
        width = shutil.get_terminal_size().columns if tty else PIPE_WIDTH
        self.stdout.write(status_text(status, width=width, color=tty), ending="")


def _status_read(*, minutes: float) -> SchedulerStatus:
    """Read the status; a lost PostgreSQL is named the way the API names it."""
    try:
        return scheduler_status(window_s=round(minutes * MINUTE_S))
    except (OperationalError, InterfaceError) as exc:
        raise ServiceUnavailable.down(
            "postgresql", so="the lanes cannot be read"
        ) from exc
