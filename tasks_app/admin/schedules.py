"""Schedule admin: saved through the services, so beat's entry follows each change."""

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from tasks_app.errors import InvalidInput
from tasks_app.models import Schedule
from tasks_app.services.schedules import (
    FIELDS,
    schedule_create,
    schedule_delete,
    schedule_update,
)


class ScheduleAdminForm(forms.ModelForm):
    """The schedule form; the service's rules are reported on their field."""

    class Meta:
        model = Schedule
        fields = list(FIELDS)


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    """Recurring schedules: "submit this message to topic T every ..."."""

    form = ScheduleAdminForm
    list_display = ["name", "topic", "timing", "enabled", "runs"]
    list_filter = ["enabled", "topic"]
    list_select_related = ["topic", "interval", "crontab"]
    search_fields = ["name"]
    readonly_fields = ["periodic_task", "created_at", "updated_at"]

    @admin.display(description="Runs on")
    def timing(self, schedule: Schedule) -> str:
        return str(schedule.interval or schedule.crontab)

    @admin.display(description="Runs")
    def runs(self, schedule: Schedule) -> str:
        url = reverse("admin:tasks_app_task_changelist")
        return format_html(
            '<a href="{}?schedule__id__exact={}">its tasks</a>', url, schedule.pk
        )

    def save_model(
        self, request: HttpRequest, obj: Schedule, form: forms.ModelForm, change: bool
    ) -> None:
        fields: dict[str, Any] = {f: form.cleaned_data[f] for f in FIELDS}
        try:
            if change:
                schedule_update(schedule=Schedule.objects.get(pk=obj.pk), **fields)
            else:
                obj.pk = schedule_create(**fields).pk
        except InvalidInput as exc:  # the form checked the same rules first
            self.message_user(request, exc.message, level="error")

    def delete_model(self, request: HttpRequest, obj: Schedule) -> None:
        schedule_delete(schedule=obj)

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[Schedule]
    ) -> None:
        for schedule in queryset:
            schedule_delete(schedule=schedule)
