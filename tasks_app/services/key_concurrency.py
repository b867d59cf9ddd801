"""Run a batch of a lane's tasks with several keys at once, each key in order.

Used when a topic's `key_concurrency` is above 1. Up to that many handlers run
at once, each for a different key; a key's next task starts only once its
previous one has finished and been recorded, so every key keeps offset order.

Threads, not processes: handlers mostly wait on other services (I/O), which
threads overlap well despite the GIL. Processes would each need their own
database connection, the lane's fencing token and their own fenced writes, and
would break the worker's model of one slice per (solo) process. Here the worker
threads only call handlers; the holder's main thread does every database write,
under the lane's fence, in batches: each round it records what finished, moves
the resume point to the first offset not finished, and only then starts the
next tasks. A holder killed mid-slice so leaves at most one started, unrecorded
task per key (the in-flight handlers), and the next holder resumes at the first
unfinished offset, skipping the tasks past it that finished.

A key whose task waits for its retry back-off holds up no other key: the other
keys' tasks of the batch run meanwhile; once only waiting keys are left and
something ran, the batch returns its resume point (the waiting task) and the
lane reader reads on from there, skipping what finished, so the other keys go
on up to one batch past the waiting task (the window of unfinished offsets a
lane keeps, like Parallel Consumer's). When nothing ran and no waiting key's
retry comes before the slice's end, the slice ends at once and the lane's next
turn waits for the first retry: its member is not held asleep. A slice that
must end (deadline, pause, shutdown, lost lease) starts nothing new and waits
for its in-flight handlers, for at most the lease grace.
"""

import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from django.db import connections

from rotation.kafka.consumer import Record
from rotation.store import BatchOutcome, EndReason
from tasks_app.handlers import TaskContext
from tasks_app.models import Task, TaskStatus, Topic
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
from tasks_app.services.outcomes import OutcomeRecorder

Pending = tuple[Task, Record]


def _handler_run(handler_name: str, message: Any, context: TaskContext) -> Any:
    """Call a handler on a worker thread; close the database connection the
    handler may have opened (Django's are per thread)."""
    try:
        return handler_call(handler_name, message, context)
    finally:
        connections.close_all()


def _head_offset(item: tuple[str, deque[Pending]]) -> float:
    queue = item[1]
    return queue[0][1].offset if queue else math.inf


@dataclass
class KeyedBatch:
    """One batch of a lane, run with up to `topic.key_concurrency` keys at once."""

    topic: Topic
    recorder: OutcomeRecorder
    deadline: float
    interrupted: Callable[[], bool]
    grace_s: float
    clock: Callable[[], float] = time.monotonic
    queues: dict[str, deque[Pending]] = field(default_factory=dict)
    running: dict[Future, tuple[str, Task, Record]] = field(default_factory=dict)
    processed: int = 0
    started: int = 0
    wait_s: float = 0.0  # stopped for a retry: how long until the first is due

    def run(self, runnable: list[Pending], *, end: int) -> BatchOutcome:
        """Run the tasks (in offset order); return the resume point and why the
        slice must end, if it must."""
        for task, message in runnable:
            self.queues.setdefault(task.key, deque()).append((task, message))
        pool = ThreadPoolExecutor(
            max_workers=self.topic.key_concurrency, thread_name_prefix="lane-key"
        )
        try:
            stop = self._loop(pool, end)
        except BaseException:
            # Fenced or failed: let the in-flight handlers end (bounded) before
            # the lane's next holder may start their keys again.
            wait(list(self.running), timeout=self.grace_s)
            raise
        finally:
            # A handler hung past the grace is left to finish on its own; its
            # task runs again (at least once).
            pool.shutdown(wait=False, cancel_futures=True)
        self._collect()  # handlers that ended at the last moment
        next_offset = self._resume_point(end)
        self.recorder.flush(next_offset)
        return BatchOutcome(next_offset, self.processed, stop, self.wait_s)

    def _loop(self, pool: ThreadPoolExecutor, end: int) -> str | None:
        """Start, collect and record until the batch is done, parked or must stop."""
        stop: str | None = None
        stopped_at = 0.0
        while True:
            finished = self._collect()
            if stop is None:
                stop = self._stop_reason()
                stopped_at = self.clock()
            starts = [] if stop else self._startable()
            if finished or any(self.recorder.due(m.offset) for _, _, m in starts):
                self.recorder.flush(self._resume_point(end))
            for key, task, message in starts:
                context = handler_context(task, message, self.topic)
                future = pool.submit(
                    _handler_run, self.topic.handler, task.message, context
                )
                self.running[future] = (key, task, message)
            if not self.running:
                if stop is not None or not self._waiting():
                    return stop
                if not starts and self.started:
                    return None  # only keys waiting for a retry are left: park
                first_retry_s = self._first_retry_s()  # nothing started: all wait
                if first_retry_s > self.deadline - self.clock():
                    self.wait_s = first_retry_s
                    return EndReason.RETRY_WAIT
                time.sleep(WAIT_STEP_S)
                continue
            if stop is not None and self.clock() - stopped_at > self.grace_s:
                return stop
            wait(list(self.running), timeout=WAIT_STEP_S, return_when=FIRST_COMPLETED)

    def _collect(self) -> bool:
        """Note the outcomes of the handlers that returned; tell whether any did."""
        done = [future for future in self.running if future.done()]
        for future in done:
            key, task, message = self.running.pop(future)
            exc = future.exception()
            if exc is not None and not isinstance(exc, Exception):
                raise exc  # SystemExit and the like end the worker, as inline
            if exc is None:
                attempt_succeeded(task, self.recorder, future.result())
                finished = True
            else:
                finished = attempt_failed(task, message, self.topic, self.recorder, exc)
            if finished:
                self.queues[key].popleft()
                self.processed += 1
        return bool(done)

    def _startable(self) -> list[tuple[str, Task, Record]]:
        """Start the first task of each idle key whose attempt is due, up to the
        free handler slots; a task left running by a dead holder counts as a
        failed attempt first."""
        busy = {key for key, _, _ in self.running.values()}
        free = self.topic.key_concurrency - len(self.running)
        starts: list[tuple[str, Task, Record]] = []
        # Keys with the lowest unfinished offset first: they hold the resume point.
        for key, queue in sorted(self.queues.items(), key=_head_offset):
            if len(starts) >= free:
                break
            if key in busy:
                continue
            while queue and queue[0][0].status == TaskStatus.RUNNING:
                task, message = queue[0]
                lost = attempt_lost(task)
                if attempt_failed(task, message, self.topic, self.recorder, lost):
                    queue.popleft()
                    self.processed += 1
            if not queue or retry_wait_s(queue[0][0], self.topic) > 0:
                continue
            task, message = queue[0]
            attempt_start(task, self.recorder)
            starts.append((key, task, message))
            self.started += 1
        return starts

    def _waiting(self) -> bool:
        return any(self.queues.values())

    def _first_retry_s(self) -> float:
        """Return how long until the first waiting key's retry is due."""
        heads = [queue[0][0] for queue in self.queues.values() if queue]
        return min(retry_wait_s(task, self.topic) for task in heads)

    def _resume_point(self, end: int) -> int:
        """Return the first offset not finished in the batch (`end`: all are)."""
        heads = [queue[0][1].offset for queue in self.queues.values() if queue]
        return min(heads, default=end)

    def _stop_reason(self) -> str | None:
        if self.interrupted():
            return EndReason.SHUTDOWN
        if self.clock() >= self.deadline:
            return EndReason.DEADLINE
        return None
