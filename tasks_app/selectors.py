"""Reads that are more than a filter: task lists, task history, the seed's queue."""

from typing import Any
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet, prefetch_related_objects

from tasks_app.models import Task, TaskStatus
from tasks_app.services.tasks import task_get


def task_list(
    *, status: str | None = None, topic: str | None = None, key: str | None = None
) -> QuerySet[Task]:
    """Return tasks matching every filter given, with their topics joined."""
    tasks = Task.objects.select_related("topic")
    if status:
        tasks = tasks.filter(status=status)
    if topic:
        tasks = tasks.filter(topic__name=topic)
    if key:
        tasks = tasks.filter(key=key)
    return tasks


def task_with_events(*, task_id: UUID | str) -> Task:
    """Return a task with its recorded transitions loaded, or NotFound."""
    task = task_get(task_id=task_id)
    prefetch_related_objects([task], "events")
    return task


def task_idempotency_key_used(*, user: AbstractBaseUser, key: str) -> bool:
    """Tell whether this user already submitted a task under this key."""
    owner = user if user.is_authenticated else None
    return Task.objects.filter(submitted_by=owner, idempotency_key=key).exists()


def tasks_pending_seed() -> list[dict[str, Any]]:
    """List unpublished tasks oldest first, as the seed's `GET /tasks` did."""
    rows = (
        Task.objects.filter(status=TaskStatus.PENDING)
        .order_by("id")
        .values_list("topic__name", "message")
    )
    return [{"topic": topic, "message": message} for topic, message in rows]
