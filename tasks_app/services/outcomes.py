"""Record what handlers did: task rows, their history and dead letters, fenced.

Outcomes are collected in memory and written in bulk (one statement for all
task rows and one for all events, over unnest() arrays, whatever the batch
size), in one transaction with the lane's new resume point and under the
lane's fence, so a stale holder writes nothing.
"""

import json
import time
from dataclasses import dataclass, field

from django.utils import timezone

from tasks_app.models import DeadLetter, Task
from tasks_app.services.lane_state import LaneRef, lane_fenced, lane_resume
from tasks_app.services.sql import columns, sql

# Outcomes are written at least this often while handlers keep running, so a
# long batch shows progress; fast batches are written once, at their end. It
# also bounds what a crash re-runs: the tasks finished since the last write.
FLUSH_INTERVAL_S = 0.1

_OUTCOMES_SQL = sql(
    """
UPDATE {task} t
   SET status = d.status, attempts = d.attempts, started_at = d.started_at,
       finished_at = d.finished_at, worker = d.worker, result = d.result::jsonb,
       error = d.error
  FROM unnest(%s::bigint[], %s::text[], %s::int[], %s::timestamptz[],
              %s::timestamptz[], %s::text[], %s::text[], %s::text[])
       AS d(id, status, attempts, started_at, finished_at, worker, result, error)
 WHERE t.id = d.id
"""
)
_EVENTS_SQL = sql(
    """
INSERT INTO {taskevent} (task_id, status, at, worker, attempt, detail)
SELECT * FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::text[],
                     %s::int[], %s::text[])
"""
)


@dataclass
class OutcomeRecorder:
    """Collect one lane holder's outcomes and write them, fenced, in one go."""

    ref: LaneRef
    token: int
    member: str  # recorded as each task's worker
    careful_until: int = 0  # below it, write each task's running state first
    changed: dict[int, Task] = field(default_factory=dict)
    events: list[tuple] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    last_flush: float = 0.0  # the first task of a batch shows as running

    def note(self, task: Task, status: str, *, detail: str = "") -> None:
        """Set the task's status and remember it (with its event) for the flush."""
        task.status = status
        self.changed[task.pk] = task
        self.events.append(
            (task.pk, status, timezone.now(), task.worker, task.attempts, detail)
        )

    def due(self, offset: int) -> bool:
        """Tell whether to write the running state before the handler at `offset`:
        always below `careful_until`, else once the last write is a while ago."""
        careful = offset < self.careful_until
        return careful or time.monotonic() - self.last_flush >= FLUSH_INTERVAL_S

    def flush(self, next_offset: int) -> None:
        """Write outcomes, dead letters and the resume point if the fence holds."""
        with lane_fenced(ref=self.ref, token=self.token) as cursor:
            if self.changed:
                rows = [_row(task) for task in self.changed.values()]
                cursor.execute(_OUTCOMES_SQL, columns(rows))
            if self.events:
                cursor.execute(_EVENTS_SQL, columns(self.events))
            if self.dead_letters:
                DeadLetter.objects.bulk_create(self.dead_letters)
            lane_resume(cursor, ref=self.ref, next_offset=next_offset)
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
