"""Task writes: submit (one or many), cancel and retry, each one transaction."""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tasks_app.errors import Conflict, InvalidInput, NotFound
from tasks_app.models import OutboxEntry, Task, TaskEvent, TaskStatus, Topic
from tasks_app.services.envelope import envelope_fields, task_envelope
from tasks_app.services.json_text import compact_json
from tasks_app.services.publish_nudge import publish_nudge_on_commit
from tasks_app.services.sql import sql
from tasks_app.services.topics import topics_created_after_commit, topics_get_or_create

Submitter = User | AnonymousUser | None
"""Who submits: a signed-in user owns the task; nobody (None) means the system."""


@dataclass(frozen=True)
class TaskSpec:
    """What a client asks for: a message on a topic, with optional extras."""

    topic: str
    message: Any
    key: str | None = None
    run_at: datetime | None = None
    idempotency_key: str | None = None
    schedule_id: int | None = None  # the recurring schedule submitting it

    def body_hash(self) -> str:
        """Fingerprint the request body, to tell a repeat from a conflicting reuse."""
        body = {
            "topic": self.topic,
            "message": self.message,
            "key": self.key,
            "run_at": self.run_at.isoformat() if self.run_at else None,
        }
        encoded = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()


def message_size_check(*, message: Any) -> None:
    """Refuse messages over the size limit, saying what the limit is."""
    size = len(compact_json(message).encode())
    limit = settings.SCHEDULER_MAX_MESSAGE_BYTES
    if size > limit:
        raise InvalidInput(
            f"The message is {size} bytes, over the limit of {limit} bytes "
            "(SCHEDULER_MAX_MESSAGE_BYTES). Store large payloads elsewhere and "
            "send a reference.",
            field="message",
        )


def task_submit(*, submitted_by: Submitter, spec: TaskSpec) -> Task:
    """Accept one task; see `task_submit_many`."""
    return task_accept(submitted_by=submitted_by, spec=spec)[0]


def task_accept(*, submitted_by: Submitter, spec: TaskSpec) -> tuple[Task, bool]:
    """Accept one task; return it and whether it is new (False: the same body was
    submitted before under its idempotency key, and this is that task)."""
    return _submit(submitted_by, [spec])[0]


def task_submit_many(
    *, submitted_by: Submitter, specs: Sequence[TaskSpec]
) -> list[Task]:
    """Accept tasks in one transaction: all are stored, or none is; see `_submit`."""
    return [task for task, _ in _submit(submitted_by, specs)]


def _submit(
    submitted_by: Submitter, specs: Sequence[TaskSpec]
) -> list[tuple[Task, bool]]:
    """Accept tasks in one transaction: all are stored, or none is.

    A spec whose idempotency key was used before with the same body returns the
    original task instead of a new one. Topics are locked in name order before
    inserting, so within a topic task ids (the publish order) follow commit order.
    """
    limit = settings.SCHEDULER_MAX_BULK_TASKS
    if not specs:
        raise InvalidInput("Send at least one task.")
    if len(specs) > limit:
        raise InvalidInput(
            f"{len(specs)} tasks in one request is over the limit of {limit} "
            "(SCHEDULER_MAX_BULK_TASKS); split the list."
        )
    for spec in specs:
        message_size_check(message=spec.message)
    try:
        return _submit_in_transaction(submitted_by, specs)
    except IntegrityError:
        # A concurrent request used the same idempotency key: its task is
        # committed now, so a second pass finds and returns it.
        return _submit_in_transaction(submitted_by, specs)


@transaction.atomic
def _submit_in_transaction(
    submitted_by: Submitter, specs: Sequence[TaskSpec]
) -> list[tuple[Task, bool]]:
    user = submitted_by if isinstance(submitted_by, User) else None
    topics, created = topics_get_or_create(names=(s.topic for s in specs))
    list(
        Topic.objects.filter(pk__in=[t.pk for t in topics.values()])
        .order_by("name")
        .select_for_update(no_key=True)
    )
    previous = _previous_tasks(user, specs)
    fresh = [s for s in specs if s.idempotency_key not in previous]
    now = timezone.now()
    new_tasks = [
        _new_task(user, spec, topics[spec.topic], now) for spec in _dedupe(fresh)
    ]
    _store_accepted(new_tasks, now)
    topics_created_after_commit(topics=created)
    publish_nudge_on_commit()
    by_key = {t.idempotency_key: t for t in new_tasks if t.idempotency_key}
    by_key.update(previous)
    # Tasks without a key answer in list order; keyed ones by their key.
    queue = iter([t for t in new_tasks if not t.idempotency_key])
    tasks = [
        by_key[s.idempotency_key] if s.idempotency_key else next(queue) for s in specs
    ]
    new = {task.pk for task in new_tasks}
    return [(task, task.pk in new) for task in tasks]


def _dedupe(specs: Sequence[TaskSpec]) -> list[TaskSpec]:
    """Keep the first of specs sharing an idempotency key (one request, one task)."""
    seen: dict[str, TaskSpec] = {}
    unique: list[TaskSpec] = []
    for spec in specs:
        key = spec.idempotency_key
        if key is None:
            unique.append(spec)
        elif key not in seen:
            seen[key] = spec
            unique.append(spec)
        elif spec.body_hash() != seen[key].body_hash():
            raise _idempotency_conflict(key)
    return unique


def _previous_tasks(user: User | None, specs: Sequence[TaskSpec]) -> dict[str, Task]:
    """Find earlier tasks for the idempotency keys given, refusing changed bodies."""
    keys = {key: s for s in specs if (key := s.idempotency_key)}
    if not keys:
        return {}
    found = Task.objects.select_related("topic").filter(
        submitted_by=user, idempotency_key__in=keys
    )
    previous = {t.idempotency_key: t for t in found if t.idempotency_key}
    for key, task in previous.items():
        if task.request_hash != keys[key].body_hash():
            raise _idempotency_conflict(key)
    return previous


def _idempotency_conflict(key: str) -> Conflict:
    return Conflict(
        f"Idempotency key {key!r} was already used with a different body. Use a "
        "new key for a new task, or resend the original body to get its task.",
        field="idempotency_key",
    )


# A new task's column values as the model's defaults give them (the generated
# one left to PostgreSQL). Only `uuid`'s default is computed per row, and
# `_new_task` always sets it.
_NEW_TASK_COLUMNS: dict[str, Any] = {
    field.attname: field.get_default()
    for field in Task._meta.concrete_fields
    if not field.generated
}
_UUID_FIELD = Task._meta.get_field("uuid")
_TOPIC_FIELD = Task._meta.get_field("topic")


def _new_task(user: User | None, spec: TaskSpec, topic: Topic, now: datetime) -> Task:
    """Build the task a spec asks for, from its columns (`Task.from_columns`)."""
    task = Task.from_columns(
        {
            **_NEW_TASK_COLUMNS,
            "uuid": _UUID_FIELD.get_default(),
            "topic_id": topic.pk,
            "key": spec.key or topic.name,
            "message": spec.message,
            "run_at": spec.run_at,
            "idempotency_key": spec.idempotency_key,
            "request_hash": spec.body_hash() if spec.idempotency_key else "",
            "submitted_by_id": user.pk if user else None,
            "created_at": now,
            "schedule_id": spec.schedule_id,
        }
    )
    _TOPIC_FIELD.set_cached_value(task, topic)  # the envelope and answer name it
    return task


# One statement stores the tasks, their outbox entries and first events: a
# third of what three ORM bulk_create calls cost for a list of 1,000
# (docs/benchmarks.md). Ids are taken in list order, so within a topic the
# publish order is the submitted order. The tasks go as one JSON document,
# encoded in C: psycopg adapted arrays of parameters element by element in
# Python. The `json` type keeps each envelope's text as given, so the outbox
# holds what task_envelope gives, to the byte; each task's id, topic, key and
# message are read from it, not sent a second time beside it.
_STORE_ACCEPTED = """
WITH given AS (
    SELECT (envelope ->> 'task_id')::uuid AS uuid, topic_id,
           envelope ->> 'topic' AS topic_name, envelope ->> 'key' AS key,
           (envelope -> 'message')::jsonb AS message, run_at, idempotency_key,
           request_hash, schedule_id, envelope, position
    FROM ROWS FROM (
        json_to_recordset(%(tasks)s::json) AS (
            topic_id bigint, run_at timestamptz, idempotency_key text,
            request_hash text, schedule_id bigint, envelope json
        )
    ) WITH ORDINALITY AS g(
        topic_id, run_at, idempotency_key, request_hash, schedule_id, envelope,
        position
    )
), task AS (
    INSERT INTO {task} (
        uuid, topic_id, key, message, run_at, idempotency_key, request_hash,
        schedule_id, submitted_by_id, status, attempts, created_at, worker, error
    )
    SELECT uuid, topic_id, key, message, run_at,
           idempotency_key, request_hash, schedule_id, %(user_id)s, 'pending', 0,
           %(now)s, '', ''
    FROM given ORDER BY position
    RETURNING id, uuid
), outbox AS (
    INSERT INTO {outbox} (task_id, topic_name, key, envelope, available_at)
    SELECT task.id, g.topic_name, g.key, g.envelope::text,
           coalesce(g.run_at, %(now)s)
    FROM task JOIN given g USING (uuid) ORDER BY task.id
), event AS (
    INSERT INTO {taskevent} (task_id, status, at, worker, attempt, detail)
    SELECT id, 'pending', %(now)s, '', 0, '' FROM task ORDER BY id
)
SELECT id, uuid FROM task
"""


def _store_accepted(tasks: list[Task], now: datetime) -> None:
    """Insert new tasks with their outbox entries and first events; set their ids."""
    if not tasks:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            sql(_STORE_ACCEPTED),
            {
                "tasks": compact_json([_stored_columns(task) for task in tasks]),
                "user_id": tasks[0].submitted_by_id,
                "now": now,
            },
        )
        ids = {uuid: pk for pk, uuid in cursor.fetchall()}
    for task in tasks:
        task.pk = ids[task.uuid]
        task._state.adding = False
        task._state.db = connection.alias


def _stored_columns(task: Task) -> dict[str, Any]:
    """A new task's envelope, with the columns the envelope does not carry."""
    return {
        "topic_id": task.topic_id,
        "run_at": task.run_at.isoformat() if task.run_at else None,
        "idempotency_key": task.idempotency_key,
        "request_hash": task.request_hash,
        "schedule_id": task.schedule_id,
        "envelope": envelope_fields(task=task, topic_name=task.topic.name),
    }


def _record_accepted(tasks: list[Task]) -> None:
    """Write a retried task's outbox entry and its pending event."""
    now = timezone.now()
    OutboxEntry.objects.bulk_create(
        [
            OutboxEntry(
                task=task,
                topic_name=task.topic.name,
                key=task.key,
                envelope=task_envelope(task=task, topic_name=task.topic.name),
                available_at=task.run_at or now,
            )
            for task in tasks
        ]
    )
    TaskEvent.objects.bulk_create(
        [TaskEvent(task=t, status=TaskStatus.PENDING, at=now) for t in tasks]
    )


def task_get(*, task_id: UUID | str) -> Task:
    """Return a task by its public id, or NotFound."""
    try:
        return Task.objects.select_related("topic").get(uuid=task_id)
    except (Task.DoesNotExist, ValueError, ValidationError) as exc:
        raise NotFound(f"No task with id {task_id}.") from exc


@transaction.atomic
def task_cancel(*, task_id: UUID | str) -> Task:
    """Cancel a task that has not been published.

    The outbox entry is deleted first: if the publisher holds it right now, the
    DELETE waits for the publisher's transaction, then finds the entry gone and
    the task published, and the cancel is refused. So a task ends either
    cancelled and never published, or published and the cancel answers 409.
    """
    task = task_get(task_id=task_id)
    removed, _ = OutboxEntry.objects.filter(task_id=task.pk).delete()
    if not removed:
        task.refresh_from_db()
        raise Conflict(
            f"Task {task.uuid} is {task.status}; only pending tasks can be cancelled.",
            status=task.status,
        )
    now = timezone.now()
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.CANCELLED, finished_at=now)
    TaskEvent.objects.create(task=task, status=TaskStatus.CANCELLED, at=now)
    task.refresh_from_db()
    return task


@transaction.atomic
def task_retry(*, task_id: UUID | str) -> Task:
    """Send a dead task through the pipeline again, as a new attempt series.

    Only `dead` qualifies: a `failed` task is already being retried in place by
    its lane, and running it a second time beside that would break its order.
    """
    task = task_get(task_id=task_id)
    Topic.objects.select_for_update(no_key=True).filter(pk=task.topic_id).first()
    task = Task.objects.select_for_update().select_related("topic").get(pk=task.pk)
    if task.status != TaskStatus.DEAD:
        raise Conflict(
            f"Task {task.uuid} is {task.status}; only dead tasks can be retried "
            "(failed tasks are retried automatically).",
            status=task.status,
        )
    task.status, task.attempts, task.error = TaskStatus.PENDING, 0, ""
    task.finished_at = task.started_at = task.published_at = None
    task.save(
        update_fields=[
            "status",
            "attempts",
            "error",
            "finished_at",
            "started_at",
            "published_at",
        ]
    )
    _record_accepted([task])
    publish_nudge_on_commit()
    return task
