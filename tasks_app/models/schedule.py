"""Recurring schedules: a message submitted to a topic on an interval or crontab."""

from django.db import models
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from tasks_app.models.topic import Topic


class Schedule(models.Model):
    """Submit `message` to `topic` on every tick of an interval or a crontab.

    Celery beat (django-celery-beat's database scheduler) fires the schedule's
    own PeriodicTask, which the schedule services keep in step; each run is a
    task submitted like any other, once per tick. Runs are system tasks (no
    owner): a schedule belongs to the deployment, not to whoever declared it.
    """

    name = models.CharField(
        max_length=150, unique=True, help_text="What the schedule is for."
    )
    topic = models.ForeignKey(
        Topic,
        on_delete=models.PROTECT,
        related_name="schedules",
        help_text="Topic each run is submitted to.",
    )
    message = models.JSONField(help_text="The JSON message each run submits.")
    key = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="Ordering key of the runs; empty: the topic's name.",
    )
    interval = models.ForeignKey(
        IntervalSchedule,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Run every interval (set this or a crontab).",
    )
    crontab = models.ForeignKey(
        CrontabSchedule,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Run on this crontab (set this or an interval).",
    )
    enabled = models.BooleanField(default=True, help_text="Disabled: no runs.")
    periodic_task = models.OneToOneField(
        PeriodicTask,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        help_text="Beat's entry for this schedule, kept in step by the services.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(interval__isnull=False, crontab__isnull=True)
                | models.Q(interval__isnull=True, crontab__isnull=False),
                name="schedule_interval_or_crontab",
                violation_error_message="Set either an interval or a crontab.",
            )
        ]

    def __str__(self) -> str:
        return self.name
