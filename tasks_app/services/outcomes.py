"""Record what handlers did: task rows, their history and dead letters, fenced.

Outcomes are collected in memory and written in bulk (one statement for all
task rows and one for all events, each over one JSON document, whatever the
batch size), in one transaction with the lane's new resume point and under the
lane's fence, so a stale holder writes nothing.
"""

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tasks_app.models import DeadLetter, Task
from tasks_app.services.lane_state import LaneRef, lane_fenced, lane_resume
from tasks_app.services.sql import sql

# Outcomes are written at least this often while handlers keep running, so a
# long batch shows progress; fast batches are written once, at their end. It
# also bounds what a crash re-runs: the tasks finished since the last write.
FLUSH_INTERVAL_S = 0.1

# The rows go as one JSON document per statement, not as an array per column:
# psycopg adapts a Python list element by element (it was a tenth of a worker's
# CPU), while json.dumps encodes the document in C and PostgreSQL reads it in
# one pass. A result goes in as the JSON value it is (no text in between).
# The planner takes a set-returning function for 100 rows of unknown keys and
# may join it to the whole task table; `id = ANY(ARRAY(...))` makes it look the
# rows up by their primary key, as the publisher's update does.
_OUTCOMES_SQL = sql(
    """
WITH d AS MATERIALIZED (
    SELECT * FROM json_to_recordset(%s::json)
        AS d(id bigint, status text, attempts int, started_at timestamptz,
             finished_at timestamptz, worker text, result jsonb, error text)
)
UPDATE {task} t
   SET status = d.status, attempts = d.attempts, started_at = d.started_at,
       finished_at = d.finished_at, worker = d.worker, result = d.result,
       error = d.error
  FROM d
 WHERE t.id = ANY(ARRAY(SELECT id FROM d)) AND t.id = d.id
"""
)
_EVENTS_SQL = sql(
    """
INSERT INTO {taskevent} (task_id, status, at, worker, attempt, detail)
SELECT task_id, status, at, worker, attempt, detail
  FROM json_to_recordset(%s::json)
       AS d(task_id bigint, status text, at timestamptz, worker text,
            attempt int, detail text)
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
    events: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    last_flush: float = 0.0  # the first task of a batch shows as running

    def note(self, task: Task, status: str, *, at: datetime, detail: str = "") -> None:
        """Set the task's status and remember it (with its event, `at` the
        moment the task records for it) for the flush."""
        task.status = status
        self.changed[task.pk] = task
        self.events.append(
            {
                "task_id": task.pk,
                "status": status,
                "at": at.isoformat(),
                "worker": task.worker,
                "attempt": task.attempts,
                "detail": detail,
            }
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
                cursor.execute(_OUTCOMES_SQL, [json.dumps(rows)])
            if self.events:
                cursor.execute(_EVENTS_SQL, [json.dumps(self.events)])
            if self.dead_letters:
                DeadLetter.objects.bulk_create(self.dead_letters)
            lane_resume(cursor, ref=self.ref, next_offset=next_offset)
        self.changed, self.events, self.dead_letters = {}, [], []
        self.last_flush = time.monotonic()


def _row(task: Task) -> dict[str, Any]:
    return {
        "id": task.pk,
        "status": task.status,
        "attempts": task.attempts,
        "started_at": _iso(task.started_at),
        "finished_at": _iso(task.finished_at),
        "worker": task.worker,
        "result": task.result,
        "error": task.error,
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
