"""Database models: topics and groups (policy), tasks and their history, lanes."""

from tasks_app.models.lane import LaneState, PartitionHead, Slice
from tasks_app.models.task import (
    EXCEPTIONAL_STATUSES,
    DeadLetter,
    OutboxEntry,
    Task,
    TaskCount,
    TaskEvent,
    TaskStatus,
)
from tasks_app.models.topic import ConsumerGroup, GroupTopic, Topic, WalkMode

__all__ = [
    "EXCEPTIONAL_STATUSES",
    "ConsumerGroup",
    "DeadLetter",
    "GroupTopic",
    "LaneState",
    "OutboxEntry",
    "PartitionHead",
    "Slice",
    "Task",
    "TaskCount",
    "TaskEvent",
    "TaskStatus",
    "Topic",
    "WalkMode",
]
