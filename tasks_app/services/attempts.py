"""One attempt of one task: start it, call its handler, record how it ended.

Shared by the two ways a lane runs its tasks: one at a time in offset order
(services/execution.py) and one key at a time with several keys at once
(services/key_concurrency.py). Outcomes go to an OutcomeRecorder
(services/outcomes.py), which writes them fenced.
"""

import json
import logging
import traceback
from typing import Any

from django.utils import timezone

from rotation.kafka.consumer import Record
from tasks_app.handlers import HandlerNotRegistered, TaskContext, handler_get
from tasks_app.models import Task, TaskStatus, Topic
from tasks_app.services.outcomes import OutcomeRecorder
from tasks_app.services.publisher.dead_letters import dead_letter_for
from tasks_app.services.retry import retry_due_in_s, retry_exhausted

logger = logging.getLogger(__name__)

# The longest a lane's loop sleeps between looks at its handlers, a retry
# coming due, the deadline and interruptions (pause, shutdown, a lost lease).
WAIT_STEP_S = 0.05


class AttemptLost(Exception):
    """An attempt was recorded as started but never finished."""


def attempt_lost(task: Task) -> AttemptLost:
    """Describe the attempt a task recorded as running never finished."""
    return AttemptLost(
        f"Attempt {task.attempts} did not finish: its worker died or lost the lane "
        "mid-handler (a crash, a kill, an out-of-memory kill or a hang)."
    )


def retry_wait_s(task: Task, topic: Topic) -> float:
    """Return how long until the task's next attempt is due (0: now)."""
    if task.status != TaskStatus.FAILED:
        return 0.0
    return retry_due_in_s(
        failed_at=task.finished_at,
        attempts=task.attempts,
        backoff_ms=topic.retry_backoff_ms,
        now=timezone.now(),
    )


def attempt_start(task: Task, recorder: OutcomeRecorder) -> None:
    """Count the attempt and note the task running (written with the next flush)."""
    task.attempts += 1
    task.worker = recorder.member
    task.started_at = now = timezone.now()
    recorder.note(task, TaskStatus.RUNNING, at=now)


def handler_context(task: Task, message: Record, topic: Topic) -> TaskContext:
    """Describe the attempt to its handler."""
    return TaskContext(
        task_id=str(task.uuid),
        topic=topic.name,
        key=task.key,
        partition=message.partition,
        offset=message.offset,
        attempt=task.attempts,
        timestamp_ms=message.timestamp_ms,
        worker=task.worker,
    )


def handler_call(handler_name: str, message: Any, context: TaskContext) -> Any:
    """Call the registered handler; return its result, which must be JSON."""
    handler = handler_get(handler_name)
    result = handler(message, context)
    json.dumps(result)  # a result that cannot be stored fails the task, visibly
    return result


def attempt_succeeded(task: Task, recorder: OutcomeRecorder, result: Any) -> None:
    """Note the task succeeded with `result`."""
    now = timezone.now()
    task.result, task.error, task.finished_at = result, "", now
    recorder.note(task, TaskStatus.SUCCEEDED, at=now)


def attempt_failed(
    task: Task, message: Record, topic: Topic, recorder: OutcomeRecorder, exc: Exception
) -> bool:
    """Note a failed attempt; return True when the task is dead (no retry left)."""
    task.finished_at = now = timezone.now()
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
        recorder.note(task, TaskStatus.FAILED, at=now, detail=str(exc))
        return False
    recorder.note(task, TaskStatus.DEAD, at=now, detail=str(exc))
    recorder.dead_letters.append(
        dead_letter_for(task=task, topic=topic, envelope=message.value, error=exc)
    )
    return True
