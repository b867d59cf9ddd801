"""API views: thin wrappers that validate, call one service or selector, serialize."""

from tasks_app.api.views.auth import TokenView
from tasks_app.api.views.groups import GroupViewSet
from tasks_app.api.views.rotation import MemberViewSet, SliceViewSet, StatsViewSet
from tasks_app.api.views.seed import SeedGenerateView, SeedPendingView
from tasks_app.api.views.tasks import TaskViewSet
from tasks_app.api.views.topics import TopicViewSet

__all__ = [
    "GroupViewSet",
    "MemberViewSet",
    "SeedGenerateView",
    "SeedPendingView",
    "SliceViewSet",
    "StatsViewSet",
    "TaskViewSet",
    "TokenView",
    "TopicViewSet",
]
