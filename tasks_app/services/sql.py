"""Raw SQL helpers: table names from the models, and arrays for unnest().

Set-based statements (unnest() of arrays, DELETE ... RETURNING, upserts) are
written by hand where the ORM would cost a round trip per row; their table
names come from here, so renaming a model's table cannot leave a query behind.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from tasks_app.models.lane import LaneState, PartitionHead, Slice
from tasks_app.models.task import (
    DeadLetter,
    OutboxEntry,
    Task,
    TaskCount,
    TaskEvent,
)
from tasks_app.models.topic import ConsumerGroup, GroupTopic, Topic

TABLES = {
    "task": Task._meta.db_table,
    "taskevent": TaskEvent._meta.db_table,
    "taskcount": TaskCount._meta.db_table,
    "outbox": OutboxEntry._meta.db_table,
    "deadletter": DeadLetter._meta.db_table,
    "topic": Topic._meta.db_table,
    "consumergroup": ConsumerGroup._meta.db_table,
    "grouptopic": GroupTopic._meta.db_table,
    "lanestate": LaneState._meta.db_table,
    "partitionhead": PartitionHead._meta.db_table,
    "slice": Slice._meta.db_table,
}


def sql(template: str, **fragments: str) -> str:
    """Fill a statement's `{table}` names (and any `{fragment}`) in."""
    return template.format(**TABLES, **fragments)


def columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Turn rows into per-column lists, one unnest() argument each."""
    return [list(column) for column in zip(*rows, strict=True)]


def array_literal(values: Iterable[int | str]) -> str:
    """Spell integers or canonical UUIDs (text that needs no quoting) as a
    PostgreSQL array literal: far cheaper than adapting a Python list element
    by element, which dominated the publisher's client time."""
    return "{" + ",".join(map(str, values)) + "}"
