"""The recurring schedule serializer: what the config file's [[schedules]] accept."""

from typing import Any

from celery.schedules import crontab
from rest_framework import serializers

from tasks_app.api.serializers.base import KafkaNameField, RejectUnknownFieldsMixin
from tasks_app.models import Schedule

CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
CRONTAB_HELP = "'minute hour day-of-month month day-of-week' in UTC, as in cron."


class ScheduleSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """A schedule: its message, its topic, and either `every_s` or `crontab`."""

    name = serializers.CharField(
        max_length=150, help_text=Schedule._meta.get_field("name").help_text
    )
    topic = KafkaNameField(help_text="Topic each run is submitted to.")
    message = serializers.JSONField(help_text="The JSON message each run submits.")
    key = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        help_text=Schedule._meta.get_field("key").help_text,
    )
    every_s = serializers.IntegerField(
        min_value=1, required=False, help_text="Run every this many seconds."
    )
    crontab = serializers.CharField(required=False, help_text=CRONTAB_HELP)
    enabled = serializers.BooleanField(required=False, help_text="Default: true.")

    def validate_crontab(self, value: str) -> dict[str, str]:
        """Split the five cron fields and let Celery's crontab check each."""
        parts = value.split()
        if len(parts) != len(CRONTAB_FIELDS):
            raise serializers.ValidationError(f"needs five fields: {CRONTAB_HELP}")
        fields = dict(zip(CRONTAB_FIELDS, parts, strict=True))
        try:
            crontab(**fields)
        except ValueError as exc:
            raise serializers.ValidationError(f"{value!r} is not valid: {exc}") from exc
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        timings = [name for name in ("every_s", "crontab") if name in attrs]
        if len(timings) != 1:
            raise serializers.ValidationError(
                {
                    "every_s": "set every_s or crontab, not both"
                    if timings
                    else "set every_s or crontab"
                }
            )
        return attrs
