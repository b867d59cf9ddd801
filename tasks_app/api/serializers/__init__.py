"""Serializers: validate what clients send and shape what the API answers."""

from tasks_app.api.serializers.base import ErrorSerializer, RejectUnknownFieldsMixin
from tasks_app.api.serializers.rotation import (
    MemberSerializer,
    SliceListQuerySerializer,
    SliceSerializer,
    StatsSerializer,
)
from tasks_app.api.serializers.tasks import (
    TaskAcceptedSerializer,
    TaskCreateSerializer,
    TaskDetailSerializer,
    TaskEventSerializer,
    TaskListQuerySerializer,
    TaskMessageSerializer,
    TaskSerializer,
)
from tasks_app.api.serializers.topics import (
    GroupSerializer,
    GroupUpdateSerializer,
    TopicSerializer,
    TopicUpdateSerializer,
)

__all__ = [
    "ErrorSerializer",
    "GroupSerializer",
    "GroupUpdateSerializer",
    "MemberSerializer",
    "RejectUnknownFieldsMixin",
    "SliceListQuerySerializer",
    "SliceSerializer",
    "StatsSerializer",
    "TaskAcceptedSerializer",
    "TaskCreateSerializer",
    "TaskDetailSerializer",
    "TaskEventSerializer",
    "TaskListQuerySerializer",
    "TaskMessageSerializer",
    "TaskSerializer",
    "TopicSerializer",
    "TopicUpdateSerializer",
]
