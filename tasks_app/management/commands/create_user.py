"""`manage.py create_user NAME --role submitter|operator`: a user and its API token."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tasks_app.errors import SchedulerError
from tasks_app.roles import ROLE_GROUPS, Role
from tasks_app.services.users import user_create


class Command(BaseCommand):
    """Create a submitter or an operator and print its password and token once."""

    help = (
        "Create a user in the submitters or operators group, with a random "
        "password and an API token, and print both (they are not stored "
        "anywhere else). Submitters submit tasks and see their own; operators "
        "manage topics, groups and every task, and may sign in to the admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--role",
            required=True,
            choices=[role.value for role in Role],
            help="submitter or operator.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        role = Role(options["role"])
        try:
            created = user_create(username=options["username"], role=role)
        except SchedulerError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"User {created.username!r} is ready, in the {ROLE_GROUPS[role]} group."
        )
        self.stdout.write(f"Password: {created.password}")
        self.stdout.write(f"API token: {created.token}")
