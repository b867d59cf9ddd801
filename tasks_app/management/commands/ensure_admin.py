"""`manage.py ensure_admin`: make sure the admin user and its API token exist."""

import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tasks_app.errors import SchedulerError
from tasks_app.services.users import admin_credentials_ensure


class Command(BaseCommand):
    """Create the superuser and token if missing; idempotent, so `make dev` runs it."""

    help = (
        "Create the admin superuser and its API token if missing. The password is "
        "ADMIN_PASSWORD, else the one in --credentials while it still works, else "
        "a new random one. With --credentials, write username, password and token "
        "there as JSON (mode 0600)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin", help="Default: admin.")
        parser.add_argument(
            "--credentials",
            type=Path,
            help="JSON file to read the previous password from and write to.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["credentials"]
        given = os.environ.get("ADMIN_PASSWORD") or None
        try:
            credentials = admin_credentials_ensure(
                username=options["username"], password=given, path=path
            )
        except SchedulerError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Admin user {credentials.username!r} is ready.")
        if path is not None:
            self.stdout.write(f"Password and API token are in {path}")
            return
        self.stdout.write(f"API token: {credentials.token}")
        if credentials.password is not None and credentials.password != given:
            # Shown once: nothing else records a password generated here.
            self.stdout.write(f"Generated password: {credentials.password}")
