"""Recurring schedules: keep beat's entry in step, and submit one task per tick.

Celery beat runs django-celery-beat's database scheduler; each Schedule owns
one PeriodicTask that sends `SCHEDULE_RUN_TASK` with the schedule's id. A run
submits through the same service as the API, with an idempotency key made of
the schedule and its tick: the interval (or crontab minute) the run was fired
in. A beat that restarts and fires a tick again, or two beats overlapping in a
deploy, submit that tick once.
"""

import json
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from tasks_app.errors import Conflict, InvalidInput
from tasks_app.models import Schedule, Task
from tasks_app.services.tasks import TaskSpec, task_accept

logger = logging.getLogger(__name__)

SCHEDULE_RUN_TASK = "tasks_app.tasks.schedule_run"
# A crontab fires at most once a minute, on the minute.
CRONTAB_TICK_S = 60
FIELDS = ("name", "topic", "message", "key", "interval", "crontab", "enabled")


def schedule_create(**fields: Any) -> Schedule:
    """Create a schedule and its beat entry."""
    return _save(Schedule(), fields)


def schedule_update(*, schedule: Schedule, **changes: Any) -> Schedule:
    """Change a schedule; its beat entry follows."""
    return _save(schedule, changes)


@transaction.atomic
def schedule_delete(*, schedule: Schedule) -> None:
    """Delete a schedule and its beat entry; its runs stay, without the link."""
    entry = schedule.periodic_task
    schedule.delete()
    if entry is not None:
        entry.delete()


@transaction.atomic
def _save(schedule: Schedule, fields: dict[str, Any]) -> Schedule:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown schedule fields: {', '.join(sorted(unknown))}.")
    for name, value in fields.items():
        setattr(schedule, name, value)
    try:
        schedule.full_clean()
    except ValidationError as exc:
        if schedule.pk:
            schedule.refresh_from_db()  # the caller's object stays as saved
        field, messages = next(iter(exc.message_dict.items()))
        where = "" if field == "__all__" else f"{field}: "
        raise InvalidInput(where + " ".join(messages), field=field) from exc
    schedule.save()
    schedule.periodic_task = _entry_sync(schedule)
    schedule.save(update_fields=["periodic_task"])
    return schedule


def _entry_sync(schedule: Schedule) -> PeriodicTask:
    """Write the schedule's PeriodicTask: beat reads it from the database."""
    entry = schedule.periodic_task or PeriodicTask()
    entry.name = f"schedule {schedule.pk}: {schedule.name}"[:200]
    entry.task = SCHEDULE_RUN_TASK
    entry.args = json.dumps([schedule.pk])
    entry.interval = schedule.interval
    entry.crontab = schedule.crontab
    entry.enabled = schedule.enabled
    entry.description = "Kept in step with its schedule: edit the schedule."
    entry.save()
    return entry


def schedule_timing(
    *, every_s: int | None = None, crontab: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return the interval or crontab row for `every_s` seconds or a crontab's
    fields (UTC), as `interval` and `crontab` arguments of the services."""
    if every_s is not None:
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=every_s, period=IntervalSchedule.SECONDS
        )
        return {"interval": interval, "crontab": None}
    if crontab is None:
        raise InvalidInput("Give every_s or crontab.")
    row = CrontabSchedule.objects.filter(timezone="UTC", **crontab).first()
    row = row or CrontabSchedule.objects.create(timezone="UTC", **crontab)
    return {"interval": None, "crontab": row}


def schedule_run(*, schedule_id: int, fired_at: float) -> Task | None:
    """Submit the schedule's message for the tick `fired_at` falls in.

    Return the tick's task (the one submitted before, if the tick ran already),
    or None when the schedule is gone or disabled (beat had a stale entry).
    """
    schedule = Schedule.objects.select_related("topic").filter(pk=schedule_id).first()
    if schedule is None or not schedule.enabled:
        logger.info("Schedule %s is gone or disabled; no run", schedule_id)
        return None
    tick = schedule_tick(schedule=schedule, fired_at=fired_at)
    key = f"schedule:{schedule.pk}:{tick:%Y-%m-%dT%H:%M:%SZ}"
    done = Task.objects.filter(schedule=schedule, idempotency_key=key).first()
    if done is not None:
        logger.info("Schedule %r already ran its %s tick", schedule.name, tick)
        return done
    spec = TaskSpec(
        topic=schedule.topic.name,
        message=schedule.message,
        key=schedule.key or None,
        idempotency_key=key,
        schedule_id=schedule.pk,
    )
    try:
        return task_accept(submitted_by=None, spec=spec)[0]
    except Conflict:
        # The tick ran with the message as it was before an edit.
        return Task.objects.get(schedule=schedule, idempotency_key=key)


def schedule_tick(*, schedule: Schedule, fired_at: float) -> datetime:
    """Return the start of the tick `fired_at` falls in (UTC).

    Ticks are the interval's multiples since the epoch, or crontab minutes.
    Beat fires a schedule at least one interval after its last run, so two
    runs never share a tick; a second firing of one run (a restart before
    beat saved its state, a second beat) does.
    """
    if schedule.interval is not None:
        every_s = schedule.interval.schedule.run_every.total_seconds()
    else:
        every_s = CRONTAB_TICK_S
    start = math.floor(fired_at / every_s) * every_s
    return datetime.fromtimestamp(start, UTC)
