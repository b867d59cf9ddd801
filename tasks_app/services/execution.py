"""Run a lane's messages in order and record every outcome under the lane's fence.

Handlers run one at a time in offset order. Outcomes are written in bulk, in one
transaction with the lane's new resume point and a check that the holder's
fencing token is still the lane's epoch, so a stale holder writes nothing.
"""

import json
import logging
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

from rotation.consumer import Record
from rotation.lanes import Lane
from rotation.scheduler import EndReason
from rotation.store import BatchOutcome
from tasks_app.handlers import HandlerNotRegistered, TaskContext, handler_get
from tasks_app.models import DeadLetter, PartitionHead, Task, TaskStatus, Topic
from tasks_app.models.task import TERMINAL_STATUSES
from tasks_app.services.healing import MARKER_HEADER
from tasks_app.services.lanes import lane_fenced

logger = logging.getLogger(__name__)

# Outcomes are written at least this often while handlers keep running, so a
# long batch shows progress; fast batches are written once, at their end.
FLUSH_INTERVAL_S = 0.1
# A dead letter's `error` header carries this much of the error message.
DEAD_LETTER_ERROR_CHARS = 1000
# Granularity of a retry wait, so a pause, shutdown or lost lease is noticed.
WAIT_STEP_S = 0.05


_OUTCOMES_SQL = """
UPDATE tasks_app_task t
   SET status = d.status, attempts = d.attempts, started_at = d.started_at,
       finished_at = d.finished_at, worker = d.worker, result = d.result::jsonb,
       error = d.error
  FROM unnest(%s::bigint[], %s::text[], %s::int[], %s::timestamptz[],
              %s::timestamptz[], %s::text[], %s::text[], %s::text[])
       AS d(id, status, attempts, started_at, finished_at, worker, result, error)
 WHERE t.id = d.id
"""
_EVENTS_SQL = """
INSERT INTO tasks_app_taskevent (task_id, status, at, worker, attempt, detail)
SELECT * FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::text[],
                     %s::int[], %s::text[])
"""
_RESUME_SQL = """
UPDATE tasks_app_lanestate SET next_offset = %s, updated_at = now()
 WHERE group_id = %s AND topic_id = %s AND partition = %s
"""


def _columns(rows: list[tuple]) -> list[list]:
    """Turn rows into per-column lists for an unnest() statement."""
    return [list(column) for column in zip(*rows, strict=True)]


@dataclass
class _Recorder:
    """Collect outcomes in memory and write them, fenced, in one transaction.

    Plain SQL over unnest() arrays: one statement for all task rows and one for
    all events, whatever the batch size.
    """

    group_pk: int
    topic_pk: int
    lane: Lane
    token: int
    member: str  # recorded as each task's worker
    careful_until: int = 0  # below it, write each task's running state first
    changed: dict[int, Task] = field(default_factory=dict)
    events: list[tuple] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    last_flush: float = 0.0  # the first task of a batch shows as running

    def note(self, task: Task, status: str, *, detail: str = "") -> None:
        task.status = status
        self.changed[task.pk] = task
        self.events.append(
            (task.pk, status, timezone.now(), task.worker, task.attempts, detail)
        )

    def due(self, offset: int) -> bool:
        """Tell whether to write the running state before the handler at `offset`."""
        careful = offset < self.careful_until
        return careful or time.monotonic() - self.last_flush >= FLUSH_INTERVAL_S

    def flush(self, next_offset: int) -> None:
        """Write outcomes, dead letters and the resume point if the fence holds."""
        with lane_fenced(
            lane=self.lane,
            group_pk=self.group_pk,
            topic_pk=self.topic_pk,
            token=self.token,
        ) as cursor:
            if self.changed:
                rows = [_row(task) for task in self.changed.values()]
                cursor.execute(_OUTCOMES_SQL, _columns(rows))
            if self.events:
                cursor.execute(_EVENTS_SQL, _columns(self.events))
            if self.dead_letters:
                DeadLetter.objects.bulk_create(self.dead_letters)
            cursor.execute(
                _RESUME_SQL,
                [next_offset, self.group_pk, self.topic_pk, self.lane.partition],
            )
        self.changed, self.events, self.dead_letters = {}, [], []
        self.last_flush = time.monotonic()


def _row(task: Task) -> tuple:
    result = None if task.result is None else json.dumps(task.result)
    return (
        task.pk,
        task.status,
        task.attempts,
        task.started_at,
        task.finished_at,
        task.worker,
        result,
        task.error,
    )


def batch_process(
    *,
    lane: Lane,
    token: int,
    member: str,
    messages: Sequence[Record],
    deadline: float,
    interrupted: Callable[[], bool],
    lane_ids: tuple[int, int],
    careful_until: int = 0,
) -> BatchOutcome:
    """Run the messages' tasks in order; see the module docstring.

    Below `careful_until` (a holder of the lane died there) each task's running
    state, its attempt counted, is written before its handler starts: a task
    that kills its worker is then known, and ends dead after `max_attempts` runs.
    """
    recorder = _Recorder(*lane_ids, lane, token, member, careful_until)
    task_ids = [_task_id(message) for message in messages]
    tasks = _tasks_for(task_ids)
    if _partition_lost(lane_ids[1], lane.partition):  # read after the tasks
        return BatchOutcome(messages[0].offset, 0, EndReason.LOG_LOST)
    topic = Topic.objects.get(pk=lane_ids[1])
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


def _partition_lost(topic_pk: int, partition: int) -> bool:
    """Tell whether the publisher found the partition's log reset.

    It flags that in the transaction that records the new offsets, so once a
    batch's tasks show them, the flag shows too: a task published into a reset
    log never runs before the lane has healed (older tasks go first).
    """
    head = PartitionHead.objects.filter(topic_id=topic_pk, partition=partition)
    return head.filter(lost=True).exists()


def _task_id(message: Record) -> str | None:
    """Return the message's task id, from its headers or else its envelope.

    Anything else on the topic (another producer's message, a malformed header)
    is passed over with a log line: it must never wedge the lane.
    """
    if MARKER_HEADER in message.headers:
        return None  # opens a healed log; see tasks_app.services.healing
    raw: Any = message.headers.get("task_id")
    if raw is None:
        try:
            raw = json.loads(message.value)["task_id"]
        except (ValueError, KeyError, TypeError):
            raw = None
    try:
        return str(uuid.UUID(raw.decode() if isinstance(raw, bytes) else raw))
    except (ValueError, TypeError, AttributeError):  # UnicodeDecodeError included
        logger.warning(
            "Message at %s/%d/%d carries no valid task id (%r); skipping it",
            message.topic,
            message.partition,
            message.offset,
            raw if raw is None else raw[:64],
        )
        return None


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
    recorder: _Recorder,
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
    if task.status != TaskStatus.FAILED or task.finished_at is None:
        return 0.0
    backoff = timedelta(milliseconds=topic.retry_backoff_ms * 2 ** (task.attempts - 1))
    return (task.finished_at + backoff - timezone.now()).total_seconds()


def _attempt(
    task: Task, message: Record, topic: Topic, recorder: _Recorder, next_offset: int
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
    task: Task, message: Record, topic: Topic, recorder: _Recorder, exc: Exception
) -> bool:
    task.finished_at = timezone.now()
    task.error = "".join(traceback.format_exception(exc))
    final = isinstance(exc, HandlerNotRegistered) or task.attempts >= topic.max_attempts
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
        DeadLetter(
            task=task,
            topic=topic,
            key=task.key,
            envelope=message.value.decode(errors="replace"),
            error=str(exc)[:DEAD_LETTER_ERROR_CHARS],
        )
    )
    return True
