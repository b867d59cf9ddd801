"""Recurring schedules: beat's entries follow them, one task per tick, runs listed."""

import json
import os
import re
import signal
import time
import uuid
from pathlib import Path

import pytest
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from scheduler_site.workers import beat_argv
from tasks_app.errors import InvalidInput
from tasks_app.models import Schedule, Task
from tasks_app.services.schedules import (
    SCHEDULE_RUN_TASK,
    schedule_create,
    schedule_delete,
    schedule_run,
    schedule_update,
)
from tests.cluster import Cluster, wait_for, worker_database_url
from tests.rotation_support import make_topic

T0 = 1_800_000_000.0  # a multiple of 10 s and of 60 s


def _every(seconds: int) -> IntervalSchedule:
    return IntervalSchedule.objects.get_or_create(
        every=seconds, period=IntervalSchedule.SECONDS
    )[0]


def _hourly() -> CrontabSchedule:
    return CrontabSchedule.objects.create(minute="0", hour="*")


@pytest.fixture
def schedule(db, topic_name) -> Schedule:
    """A schedule every 10 s of a message with a key."""
    topic = make_topic(topic_name, paused=True)
    return schedule_create(
        name=f"s-{topic_name}",
        topic=topic,
        message={"report": "daily"},
        key="reports",
        interval=_every(10),
    )


def test_a_schedule_has_a_beat_entry_that_follows_it(schedule):
    entry = schedule.periodic_task
    assert (entry.task, json.loads(entry.args)) == (SCHEDULE_RUN_TASK, [schedule.pk])
    assert (entry.interval, entry.crontab, entry.enabled) == (
        schedule.interval,
        None,
        True,
    )

    crontab = _hourly()
    schedule_update(schedule=schedule, interval=None, crontab=crontab, enabled=False)
    entry.refresh_from_db()
    assert (entry.interval, entry.crontab, entry.enabled) == (None, crontab, False)

    schedule_delete(schedule=schedule)
    assert not PeriodicTask.objects.filter(pk=entry.pk).exists()


def test_a_schedule_needs_an_interval_or_a_crontab_not_both(schedule):
    with pytest.raises(InvalidInput, match="either an interval or a crontab"):
        schedule_update(schedule=schedule, crontab=_hourly())
    with pytest.raises(InvalidInput, match="either an interval or a crontab"):
        schedule_update(schedule=schedule, interval=None)


def test_a_run_submits_the_message_once_per_tick(schedule):
    first = schedule_run(schedule_id=schedule.pk, fired_at=T0 + 0.2)
    again = schedule_run(schedule_id=schedule.pk, fired_at=T0 + 9.9)  # same tick
    later = schedule_run(schedule_id=schedule.pk, fired_at=T0 + 10.0)  # the next

    assert again == first != later
    runs = list(Task.objects.filter(schedule=schedule).order_by("id"))
    assert [t.idempotency_key for t in runs] == [
        f"schedule:{schedule.pk}:2027-01-15T08:00:00Z",
        f"schedule:{schedule.pk}:2027-01-15T08:00:10Z",
    ]
    assert (runs[0].topic, runs[0].message, runs[0].key) == (
        schedule.topic,
        {"report": "daily"},
        "reports",
    )
    assert runs[0].submitted_by is None  # a system task: operators see it


def test_a_crontab_tick_is_the_minute_it_fired_in(schedule):
    schedule_update(schedule=schedule, interval=None, crontab=_hourly())
    first = schedule_run(schedule_id=schedule.pk, fired_at=T0 + 1)
    assert schedule_run(schedule_id=schedule.pk, fired_at=T0 + 59) == first
    assert schedule_run(schedule_id=schedule.pk, fired_at=T0 + 3600) != first


def test_a_run_after_an_edit_of_the_message_keeps_the_ticks_task(schedule):
    first = schedule_run(schedule_id=schedule.pk, fired_at=T0)
    schedule_update(schedule=schedule, message={"report": "weekly"})
    assert schedule_run(schedule_id=schedule.pk, fired_at=T0 + 1) == first


def test_a_disabled_or_deleted_schedule_submits_nothing(schedule):
    schedule_update(schedule=schedule, enabled=False)
    assert schedule_run(schedule_id=schedule.pk, fired_at=T0) is None
    pk = schedule.pk
    schedule_delete(schedule=schedule)
    assert schedule_run(schedule_id=pk, fired_at=T0) is None
    assert not Task.objects.exists()


def test_the_task_list_filters_by_schedule(schedule, operator_client):
    schedule_run(schedule_id=schedule.pk, fired_at=T0)
    make_topic(f"{schedule.topic.name}-other")
    Task.objects.create(topic=schedule.topic, key="x", message={})  # not a run

    response = operator_client.get(f"/api/tasks/?schedule={schedule.pk}")

    assert response.status_code == 200, response.data
    [run] = response.data["results"]
    assert run["schedule"] == schedule.name
    missing = operator_client.get("/api/tasks/?schedule=abc")
    assert missing.status_code == 400


def test_the_admin_adds_a_schedule_with_its_entry_and_links_to_its_runs(
    admin_client, topic_name
):
    topic = make_topic(topic_name, paused=True)
    response = admin_client.post(
        "/admin/tasks_app/schedule/add/",
        {
            "name": "nightly",
            "topic": topic.pk,
            "message": '{"n": 1}',
            "key": "",
            "interval": _every(30).pk,
            "crontab": "",
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    schedule = Schedule.objects.get(name="nightly")
    assert schedule.periodic_task.interval.every == 30
    schedule_run(schedule_id=schedule.pk, fired_at=T0)

    page = admin_client.get("/admin/tasks_app/schedule/").content.decode()
    link = f"/admin/tasks_app/task/?schedule__id__exact={schedule.pk}"
    assert link in page
    runs = admin_client.get(link).content.decode()
    assert str(Task.objects.get(schedule=schedule).uuid) in runs


def _beat_sends(log_dir: Path, entry: str, beats: str = "beat*") -> int:
    """Count the times the beats named by `beats` logged sending the entry."""
    pattern = re.compile(rf"Sending due task {re.escape(entry)} ")
    return sum(
        len(pattern.findall(log.read_text(errors="replace")))
        for log in log_dir.glob(f"{beats}.log")
    )


@pytest.mark.django_db(transaction=True)
def test_a_schedule_every_2_s_submits_one_task_per_tick_across_beat_restarts(
    topic_name, tmp_path
):
    topic = make_topic(topic_name, paused=True)  # the runs need not run
    schedule = schedule_create(
        name=f"every-2s-{uuid.uuid4().hex[:6]}",
        topic=topic,
        message={"tick": True},
        interval=_every(2),
    )
    runs = Task.objects.filter(schedule=schedule)

    def reach(count: int) -> None:
        wait_for(lambda: runs.count() >= count, timeout_s=60, what=f"{count} runs")

    cluster = Cluster({**os.environ, "DATABASE_URL": worker_database_url()}, tmp_path)
    try:
        cluster.worker("publisher", "publish")  # runs schedule_run
        started = time.time()
        cluster.beat()
        reach(3)
        # A second beat overlaps the first, as in a rolling deploy: both fire
        # every tick. Waiting for the second's own sends, not for more runs:
        # on a busy machine it can start so late that the runs come from the
        # first alone, and no tick is fired twice.
        cluster.start("beat2", beat_argv())
        entry = schedule.periodic_task.name
        wait_for(
            lambda: _beat_sends(tmp_path, entry, "beat2") >= 3,
            timeout_s=60,
            what="the second beat's sends",
        )
        # Killed before it saved when it last ran: the restart fires at once.
        cluster.signal("beat", signal.SIGKILL)
        cluster.wait_exit("beat")
        cluster.signal("beat2", signal.SIGKILL)
        cluster.wait_exit("beat2")
        cluster.beat()
        reach(runs.count() + 3)
        cluster.check_alive()
        elapsed = time.time() - started
    finally:
        cluster.stop()

    ticks = sorted(t.idempotency_key for t in runs)
    assert len(ticks) == len(set(ticks)) == runs.count()
    sends = _beat_sends(tmp_path, entry)
    assert sends > len(ticks)  # repeated firings of a tick were absorbed
    assert len(ticks) <= elapsed / 2 + 1


def test_a_schedule_id_past_the_database_range_is_refused(operator_client):
    response = operator_client.get(f"/api/tasks/?schedule={2**63}")
    assert response.status_code == 400
    assert response.data["field"] == "schedule"
