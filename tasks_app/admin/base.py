"""Admin building blocks: read-only record pages and action reports."""

from django.contrib import admin, messages
from django.db.models import Model
from django.http import HttpRequest

# Ids named in one success message; the rest are counted.
MAX_IDS_LISTED = 20


class ReadOnlyAdminMixin:
    """Show records without add, change or delete: workers write them."""

    def has_add_permission(
        self, request: HttpRequest, obj: Model | None = None
    ) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: Model | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: Model | None = None
    ) -> bool:
        return False


def _named(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_IDS_LISTED])
    hidden = len(items) - MAX_IDS_LISTED
    return f"{shown} and {hidden} more" if hidden > 0 else shown


def action_report(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    verb: str,
    done: list[str],
    failures: list[str],
) -> None:
    """Tell the user which objects the action changed and why the others failed."""
    if done:
        model_admin.message_user(
            request, f"{verb} {len(done)}: {_named(done)}.", messages.SUCCESS
        )
    for failure in failures:
        model_admin.message_user(request, failure, messages.ERROR)
