"""Run a lane's messages through their handlers, one at a time in offset order.

A failed task is retried in place (nothing after it on the lane starts) until
the retry policy (tasks_app.services.retry) says it is dead. Outcomes go to an
OutcomeRecorder (tasks_app.services.outcomes), which writes them fenced.
"""

import json
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from django.utils import timezone

from rotation.kafka.consumer import Record
from rotation.store import BatchOutcome, EndReason
from tasks_app.handlers import HandlerNotRegistered, TaskContext, handler_get
from tasks_app.models import Task, TaskStatus, Topic
from tasks_app.models.task import TERMINAL_STATUSES
from tasks_app.services.envelope import task_id_of
from tasks_app.services.lane_state import LaneRef
from tasks_app.services.outcomes import OutcomeRecorder
from tasks_app.services.partition_heads import partition_is_lost
from tasks_app.services.publisher.dead_letters import dead_letter_for
from tasks_app.services.retry import retry_due_in_s, retry_exhausted

logger = logging.getLogger(__name__)

# Granularity of a retry wait, so a pause, shutdown or lost lease is noticed.
WAIT_STEP_S = 0.05


def batch_process(
    *,
    ref: LaneRef,
    token: int,
    member: str,
    messages: Sequence[Record],
    deadline: float,
    interrupted: Callable[[], bool],
    careful_until: int = 0,
) -> BatchOutcome:
    """Run the messages' tasks in order; see the module docstring.

    Below `careful_until` (a holder of the lane died there) each task's running
    state, its attempt counted, is written before its handler starts: a task
    that kills its worker is then known, and ends dead after `max_attempts` runs.
    """
    recorder = OutcomeRecorder(ref, token, member, careful_until)
    task_ids = [task_id_of(message) for message in messages]
    tasks = _tasks_for(task_ids)
    # Read after the tasks: the publisher flags a reset log in the transaction
    # that records the new offsets, so once the tasks show those, the flag shows
    # too, and a task published into a reset log never runs before the lane
    # has healed (older tasks go first).
    if partition_is_lost(topic_pk=ref.topic_pk, partition=ref.lane.partition):
        return BatchOutcome(messages[0].offset, 0, EndReason.LOG_LOST)
    topic = Topic.objects.get(pk=ref.topic_pk)
    next_offset, processed = messages[0].offset, 0
    for message, task_id in zip(messages, task_ids, strict=True):
        task = tasks.get(task_id) if task_id else None
        if task is not None and _runnable(task, message):
            stop = _run_task(
                task, message, topic, recorder, deadline, interrupted, next_offset
            )
            if stop is not None:
                recorder.flush(next_offset)
                return BatchOutcome(next_offset, processed, stop)
            processed += 1
        next_offset = message.offset + 1
    recorder.flush(next_offset)
    return BatchOutcome(next_offset, processed)


def _tasks_for(task_ids: Sequence[str | None]) -> dict[str, Task]:
    ids = [task_id for task_id in task_ids if task_id]
    return {str(t.uuid): t for t in Task.objects.filter(uuid__in=ids)}


def _runnable(task: Task, message: Record) -> bool:
    """Skip finished tasks (redelivery) and stale copies.

    A copy is stale when the task's recorded offset is elsewhere: a publisher
    that crashed after producing republishes, and the recorded copy is the one
    that runs.
    """
    return task.status not in TERMINAL_STATUSES and task.offset == message.offset


def _run_task(
    task: Task,
    message: Record,
    topic: Topic,
    recorder: OutcomeRecorder,
    deadline: float,
    interrupted: Callable[[], bool],
    next_offset: int,
) -> str | None:
    """Run one task, retrying in place with backoff; return a stop reason or None."""
    # Recorded running: its last attempt started and never ended.
    lost = task.status == TaskStatus.RUNNING
    if lost and _failed(task, message, topic, recorder, _attempt_lost(task)):
        return None
    while True:
        stop = _wait_for_retry(task, topic, deadline, interrupted)
        if stop is not None:
            return stop
        if _attempt(task, message, topic, recorder, next_offset):
            return None


def _wait_for_retry(
    task: Task, topic: Topic, deadline: float, interrupted: Callable[[], bool]
) -> str | None:
    """Wait until the task's next attempt is due, unless the slice must end first."""
    due_in_s = _retry_due_in_s(task, topic)
    while True:
        if interrupted():
            return EndReason.SHUTDOWN
        if time.monotonic() >= deadline:
            return EndReason.DEADLINE
        if due_in_s <= 0:
            return None
        time.sleep(min(WAIT_STEP_S, due_in_s))
        due_in_s = _retry_due_in_s(task, topic)


def _retry_due_in_s(task: Task, topic: Topic) -> float:
    if task.status != TaskStatus.FAILED:
        return 0.0
    return retry_due_in_s(
        failed_at=task.finished_at,
        attempts=task.attempts,
        backoff_ms=topic.retry_backoff_ms,
        now=timezone.now(),
    )


def _attempt(
    task: Task,
    message: Record,
    topic: Topic,
    recorder: OutcomeRecorder,
    next_offset: int,
) -> bool:
    """Run the handler once; return True when the task is done with (either way).

    The `running` state is written before the handler starts whenever the last
    write is a while ago, so a slow handler shows as running while it runs.
    """
    task.attempts += 1
    task.worker = recorder.member
    task.started_at = timezone.now()
    recorder.note(task, TaskStatus.RUNNING)
    if recorder.due(message.offset):
        recorder.flush(next_offset)
    try:
        result = _call_handler(task, message, topic)
    except Exception as exc:  # noqa: BLE001 - a handler may raise anything
        return _failed(task, message, topic, recorder, exc)
    task.result, task.error, task.finished_at = result, "", timezone.now()
    recorder.note(task, TaskStatus.SUCCEEDED)
    return True


class AttemptLost(Exception):
    """An attempt was recorded as started but never finished."""


def _attempt_lost(task: Task) -> AttemptLost:
    return AttemptLost(
        f"Attempt {task.attempts} did not finish: its worker died or lost the lane "
        "mid-handler (a crash, a kill, an out-of-memory kill or a hang)."
    )


def _call_handler(task: Task, message: Record, topic: Topic) -> Any:
    handler = handler_get(topic.handler)
    context = TaskContext(
        task_id=str(task.uuid),
        topic=topic.name,
        key=task.key,
        partition=message.partition,
        offset=message.offset,
        attempt=task.attempts,
        timestamp_ms=message.timestamp_ms,
        worker=task.worker,
    )
    result = handler(task.message, context)
    json.dumps(result)  # a result that cannot be stored fails the task, visibly
    return result


def _failed(
    task: Task, message: Record, topic: Topic, recorder: OutcomeRecorder, exc: Exception
) -> bool:
    task.finished_at = timezone.now()
    task.error = "".join(traceback.format_exception(exc))
    final = isinstance(exc, HandlerNotRegistered) or retry_exhausted(
        attempts=task.attempts, max_attempts=topic.max_attempts
    )
    logger.warning(
        "Task %s attempt %d/%d failed: %s",
        task.uuid,
        task.attempts,
        topic.max_attempts,
        exc,
    )
    if not final:
        recorder.note(task, TaskStatus.FAILED, detail=str(exc))
        return False
    recorder.note(task, TaskStatus.DEAD, detail=str(exc))
    recorder.dead_letters.append(
        dead_letter_for(task=task, topic=topic, envelope=message.value, error=exc)
    )
    return True
