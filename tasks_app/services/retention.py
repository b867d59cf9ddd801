"""Bounded storage: delete finished tasks, their history and old slice records
after the retention period.

Succeeded and cancelled tasks finished before the cutoff go, with their events,
in small batches (one short transaction each, rows in use skipped), so a purge
never holds locks the publisher or a lane waits on. Dead tasks stay until an
operator retries or deletes them, and so does a task whose dead letter is still
waiting to be sent (or, defensively, an outbox entry).

The same beat run folds the task counts (TaskCount) each connection kept.
"""

import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from tasks_app.models import TaskStatus, Topic
from tasks_app.services.sql import TABLES, sql

PURGED_STATUSES = (TaskStatus.SUCCEEDED, TaskStatus.CANCELLED)

_FIRST_AT_OR_AFTER = (
    "SELECT id, {column} FROM {table} WHERE id >= %s ORDER BY id LIMIT 1"
)
_ID_RANGE = "SELECT min(id), max(id) FROM {table}"
# Each purge batch answers how many rows it deleted and the last one's id: the
# next batch starts after it, so rows kept (dead tasks, a topic that keeps its
# tasks longer, rows in use) are read once a purge, not once a batch.
_PURGE_SLICES = """
WITH gone AS (
    DELETE FROM {slice} WHERE id IN (
        SELECT id FROM {slice}
        WHERE id > %(after)s AND id < %(bound)s AND ended_at < %(cutoff)s
        ORDER BY id LIMIT %(batch)s
    )
    RETURNING id
)
SELECT count(*), max(id) FROM gone
"""
# Per-connection count rows (TaskCount) summed into shard 0; rows a writer has
# locked right now are left for the next fold, so the fold never waits.
_FOLD_COUNTS = """
WITH taken AS (
    DELETE FROM {taskcount} WHERE id IN (
        SELECT id FROM {taskcount} WHERE shard <> 0 FOR UPDATE SKIP LOCKED
    )
    RETURNING topic_id, status, count
)
INSERT INTO {taskcount} (topic_id, status, shard, count)
SELECT topic_id, status, 0, sum(count) FROM taken
GROUP BY topic_id, status ORDER BY topic_id, status
ON CONFLICT (topic_id, status, shard)
DO UPDATE SET count = {taskcount}.count + EXCLUDED.count
"""
_DROP_ZERO_COUNTS = "DELETE FROM {taskcount} WHERE shard = 0 AND count = 0"
_PURGE_BATCH = """
WITH doomed AS (
    SELECT t.id FROM {task} t
    WHERE t.id > %(after)s AND t.id < %(bound)s AND {which_topics}
      AND t.status = ANY(%(statuses)s) AND t.finished_at < %(cutoff)s
      AND NOT EXISTS (SELECT 1 FROM {deadletter} d WHERE d.task_id = t.id)
      AND NOT EXISTS (SELECT 1 FROM {outbox} o WHERE o.task_id = t.id)
    ORDER BY t.id LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), events AS (
    DELETE FROM {taskevent} e USING doomed WHERE e.task_id = doomed.id
), gone AS (
    DELETE FROM {task} t USING doomed WHERE t.id = doomed.id RETURNING t.id
)
SELECT count(*), max(id) FROM gone
"""
# Whose tasks a purge batch takes: every topic's, or one topic's (through the
# (topic, id) index, so the purge never reads another topic's rows).
_EVERY_TOPIC = "TRUE"
_ONE_TOPIC = "t.topic_id = %(topic_id)s"


def retention_purge_run() -> int:
    """Purge what the retention no longer keeps, within the purge's time budget
    (beat runs this every SCHEDULER_PURGE_INTERVAL_S), after folding the task
    counts; return how many tasks and slices went.

    A topic's `retention_days` applies to its tasks; SCHEDULER_RETENTION_DAYS
    to the other topics' tasks and to slice records. 0 keeps everything.
    """
    task_counts_fold()
    days = settings.SCHEDULER_RETENTION_DAYS
    batch, budget_s = settings.SCHEDULER_PURGE_BATCH, settings.SCHEDULER_PURGE_BUDGET_S
    purged = 0
    if days > 0:
        purged += slices_purge(
            older_than=timedelta(days=days), batch=batch, budget_s=budget_s / 2
        )
    topics_by_days: dict[float, list[int]] = defaultdict(list)
    for topic_id, own_days in Topic.objects.order_by("id").values_list(
        "id", "retention_days"
    ):
        topic_days = days if own_days is None else own_days
        if topic_days > 0:
            topics_by_days[topic_days].append(topic_id)
    # The tasks share the other half; each topic gets one batch at least.
    deadline = time.monotonic() + budget_s / 2
    for topic_days, topic_ids in topics_by_days.items():
        purged += tasks_purge(
            older_than=timedelta(days=topic_days),
            batch=batch,
            budget_s=deadline - time.monotonic(),
            topics=topic_ids,
        )
    return purged


def task_counts_fold() -> None:
    """Sum the task counts each connection kept into one row per topic and status."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql(_FOLD_COUNTS))
        cursor.execute(sql(_DROP_ZERO_COUNTS))


def slices_purge(*, older_than: timedelta, batch: int, budget_s: float) -> int:
    """Delete slice records that ended more than `older_than` ago; see tasks_purge."""
    cutoff = timezone.now() - older_than
    parameters = {
        "bound": _first_id_at_or_after("slice", "ended_at", cutoff),
        "cutoff": cutoff,
        "batch": batch,
    }
    return _in_batches(sql(_PURGE_SLICES), parameters, batch, budget_s)


def tasks_purge(
    *,
    older_than: timedelta,
    batch: int,
    budget_s: float,
    statuses: tuple[str, ...] = PURGED_STATUSES,
    topics: Iterable[int] | None = None,
) -> int:
    """Delete tasks in `statuses` finished more than `older_than` ago, `batch` at
    a time, until none is left or `budget_s` has passed (one batch at least, of
    each topic if `topics` are given: only theirs, one topic after another);
    return how many."""
    cutoff = timezone.now() - older_than
    parameters = {
        # A task finished before the cutoff was created before it.
        "bound": _first_id_at_or_after("task", "created_at", cutoff),
        "statuses": [str(s) for s in statuses],
        "cutoff": cutoff,
        "batch": batch,
    }
    if topics is None:
        statement = sql(_PURGE_BATCH, which_topics=_EVERY_TOPIC)
        return _in_batches(statement, parameters, batch, budget_s)
    statement = sql(_PURGE_BATCH, which_topics=_ONE_TOPIC)
    deadline = time.monotonic() + budget_s
    return sum(
        _in_batches(
            statement,
            {**parameters, "topic_id": topic_id},
            batch,
            deadline - time.monotonic(),
        )
        for topic_id in topics
    )


def _in_batches(
    statement: str, parameters: dict[str, Any], batch: int, budget_s: float
) -> int:
    """Run a batch delete, one transaction each, each after the last row the one
    before deleted, until one deletes fewer than `batch` rows or the budget is
    spent; return the rows deleted."""
    deadline = time.monotonic() + budget_s
    purged, after = 0, 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, {**parameters, "after": after})
            deleted, last_id = cursor.fetchone()
        purged += deleted
        if deleted < batch or time.monotonic() >= deadline:
            return purged
        after = last_id


def _first_id_at_or_after(table: str, column: str, cutoff: datetime) -> int:
    """Find the first id whose `column` is at or after `cutoff`, by bisecting the
    id index (the column grows with the id: rows are written as time passes).

    A purge's scan stops there instead of walking every recent row. Rows from
    transactions that committed out of order may fall on the wrong side; the
    next purge takes them.
    """
    table_name = TABLES[table]
    with connection.cursor() as cursor:
        cursor.execute(sql(_ID_RANGE, table=table_name))
        low, high = cursor.fetchone()
        if low is None:
            return 0
        high += 1
        while low < high:
            middle = (low + high) // 2
            cursor.execute(
                sql(_FIRST_AT_OR_AFTER, table=table_name, column=column), [middle]
            )
            found_id, at = cursor.fetchone()
            if at >= cutoff:
                high = middle
            else:
                low = found_id + 1
        return low
