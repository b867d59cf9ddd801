"""Read-only admin pages for what the rotation records: slices and lane states."""

from django.contrib import admin

from tasks_app.admin.base import ReadOnlyAdminMixin
from tasks_app.admin.pagination import ROWS_PER_PAGE
from tasks_app.models import LaneState, Slice


@admin.register(Slice)
class SliceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every turn a member took on a lane, newest first."""

    list_display = [
        "id",
        "group",
        "topic",
        "partition",
        "member",
        "token",
        "started_at",
        "ended_at",
        "messages",
        "first_offset",
        "last_offset",
        "end_reason",
    ]
    list_filter = ["end_reason", "topic", "group"]
    list_select_related = ["group", "topic"]
    search_fields = ["member"]
    show_full_result_count = False
    list_per_page = ROWS_PER_PAGE


@admin.register(LaneState)
class LaneStateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Each lane's fencing epoch and resume offset."""

    list_display = ["group", "topic", "partition", "epoch", "next_offset", "updated_at"]
    list_filter = ["group", "topic"]
    list_select_related = ["group", "topic"]
