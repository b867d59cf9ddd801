"""Database models: topics and groups (policy), tasks and their history, lanes."""

from tasks_app.models.lane import LaneState, PartitionHead, Slice
from tasks_app.models.task import (
    DeadLetter,
    OutboxEntry,
    Task,
    TaskEvent,
    TaskStatus,
)
from tasks_app.models.topic import ConsumerGroup, GroupTopic, Topic, WalkMode

__all__ = [
    "ConsumerGroup",
    "DeadLetter",
    "GroupTopic",
    "LaneState",
    "OutboxEntry",
    "PartitionHead",
    "Slice",
    "Task",
    "TaskEvent",
    "TaskStatus",
    "Topic",
    "WalkMode",
]
