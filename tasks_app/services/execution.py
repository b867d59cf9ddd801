"""Run a lane's messages through their handlers, in offset order.

With the topic's `key_concurrency` at 1 (the default) one task runs at a time:
a failed task is retried in place (nothing after it on the lane starts) until
the retry policy (tasks_app.services.retry) says it is dead. Above 1, tasks of
different keys run at once and each key keeps its order
(services/key_concurrency.py). Outcomes go to an OutcomeRecorder
(services/outcomes.py), which writes them fenced.
"""

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from django.conf import settings

from rotation.kafka.consumer import Record
from rotation.store import BatchOutcome, EndReason
from tasks_app.models import Task, TaskStatus, Topic
from tasks_app.models.task import TERMINAL_STATUSES
from tasks_app.services.attempts import (
    WAIT_STEP_S,
    attempt_failed,
    attempt_lost,
    attempt_start,
    attempt_succeeded,
    handler_call,
    handler_context,
    retry_wait_s,
)
from tasks_app.services.envelope import task_id_of
from tasks_app.services.key_concurrency import KeyedBatch
from tasks_app.services.lane_state import LaneRef
from tasks_app.services.outcomes import OutcomeRecorder
from tasks_app.services.partition_heads import LOST_FLAG_SQL, partition_is_lost
from tasks_app.services.sql import array_literal, sql

# A batch's tasks and the partition's lost flag, in one statement. Written by
# hand: the ORM compiled this query again for every batch (0.9 ms of a first
# batch's 1.8 ms load, measured), and its list of one placeholder per id made a
# new statement for each batch length, which PostgreSQL then planned anew.
_BATCH_TASKS_SQL = sql(
    """
SELECT t.*, {lost} AS partition_lost
  FROM {task} t
 WHERE t.uuid = ANY(%(ids)s::uuid[])
""",
    lost=LOST_FLAG_SQL,
)


def batch_process(
    *,
    ref: LaneRef,
    topic: Topic,
    token: int,
    member: str,
    messages: Sequence[Record],
    deadline: float,
    interrupted: Callable[[], bool],
    careful_until: int = 0,
) -> BatchOutcome:
    """Run the messages' tasks in order; see the module docstring.

    `topic` holds the settings of the lane's topic, read once per slice.
    Below `careful_until` (a holder of the lane died there) each task's running
    state, its attempt counted, is written before its handler starts: a task
    that kills its worker is then known, and ends dead after `max_attempts` runs.
    """
    recorder = OutcomeRecorder(ref, token, member, careful_until)
    task_ids = [task_id_of(message) for message in messages]
    tasks, lost = _tasks_for(task_ids, ref)
    if lost:
        return BatchOutcome(messages[0].offset, 0, EndReason.LOG_LOST)
    runnable = [
        (task, message)
        for message, task in (
            (m, tasks.get(i) if i else None)
            for m, i in zip(messages, task_ids, strict=True)
        )
        if task is not None and _runnable(task, message)
    ]
    end = messages[-1].offset + 1
    if topic.key_concurrency > 1:
        keyed = KeyedBatch(
            topic=topic,
            recorder=recorder,
            deadline=deadline,
            interrupted=interrupted,
            grace_s=settings.SCHEDULER_LEASE_GRACE_MS / 1000,
        )
        return keyed.run(runnable, end=end)
    return _one_at_a_time(
        runnable, messages[0].offset, end, topic, recorder, deadline, interrupted
    )


class _Stop(NamedTuple):
    """Why a slice must end before a task, and for a retry, how long until due."""

    reason: str
    wait_s: float = 0.0


def _one_at_a_time(
    runnable: list[tuple[Task, Record]],
    start: int,
    end: int,
    topic: Topic,
    recorder: OutcomeRecorder,
    deadline: float,
    interrupted: Callable[[], bool],
) -> BatchOutcome:
    next_offset, processed = start, 0
    for task, message in runnable:
        next_offset = message.offset  # the skipped messages before it are done
        stop = _run_task(
            task, message, topic, recorder, deadline, interrupted, next_offset
        )
        if stop is not None:
            recorder.flush(next_offset)
            return BatchOutcome(next_offset, processed, stop.reason, stop.wait_s)
        processed += 1
    recorder.flush(end)
    return BatchOutcome(end, processed)


def _tasks_for(
    task_ids: Sequence[str | None], ref: LaneRef
) -> tuple[dict[str, Task], bool]:
    """Return the tasks by id, and whether the lane's partition is flagged lost.

    Both come from one statement, so from one snapshot: the publisher flags a
    reset log in the transaction that records the new offsets, so tasks that
    show those come with the flag, and a task published into a reset log never
    runs before the lane has healed (older tasks go first).
    """
    ids = array_literal(task_id for task_id in task_ids if task_id)
    rows = list(Task.objects.raw(_BATCH_TASKS_SQL, {**ref.params, "ids": ids}))
    if not rows:  # no task to run: only the flag matters
        return {}, partition_is_lost(
            topic_pk=ref.topic_pk, partition=ref.lane.partition
        )
    lost: bool = rows[0].partition_lost  # type: ignore[attr-defined]  # raw()'s column
    return {str(t.uuid): t for t in rows}, lost


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
) -> _Stop | None:
    """Run one task, retrying in place with backoff; say why the slice must
    stop first, if it must."""
    # Recorded running: its last attempt started and never ended.
    lost = task.status == TaskStatus.RUNNING
    if lost and attempt_failed(task, message, topic, recorder, attempt_lost(task)):
        return None
    while True:
        stop = _wait_for_retry(task, topic, deadline, interrupted)
        if stop is not None:
            return stop
        if _attempt(task, message, topic, recorder, next_offset):
            return None


def _wait_for_retry(
    task: Task, topic: Topic, deadline: float, interrupted: Callable[[], bool]
) -> _Stop | None:
    """Wait until the task's next attempt is due, unless the slice must end
    first. A retry due only after the slice's end ends it now: the member goes
    to another lane and this lane's next turn waits for the retry, rather than
    the member sleeping through its slice (and the next, and the next)."""
    due_in_s = retry_wait_s(task, topic)
    while True:
        if interrupted():
            return _Stop(EndReason.SHUTDOWN)
        left_s = deadline - time.monotonic()
        if left_s <= 0:
            return _Stop(EndReason.DEADLINE)
        if due_in_s <= 0:
            return None
        if due_in_s > left_s:
            return _Stop(EndReason.RETRY_WAIT, due_in_s)
        time.sleep(min(WAIT_STEP_S, due_in_s))
        due_in_s = retry_wait_s(task, topic)


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
    attempt_start(task, recorder)
    if recorder.due(message.offset):
        recorder.flush(next_offset)
    try:
        context = handler_context(task, message, topic)
        result = handler_call(topic.handler, task.message, context)
    except Exception as exc:  # noqa: BLE001 - a handler may raise anything
        return attempt_failed(task, message, topic, recorder, exc)
    attempt_succeeded(task, recorder, result)
    return True
