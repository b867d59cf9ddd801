"""Routes under /api/: tasks, topics, groups, slices, members, stats, schema, docs."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny
from rest_framework.routers import DefaultRouter

from tasks_app.api.views import (
    GroupViewSet,
    MemberViewSet,
    SliceViewSet,
    StatsViewSet,
    TaskViewSet,
    TokenView,
    TopicViewSet,
)

router = DefaultRouter()
# Topic names may contain dots, which the `.json` suffix routes would misread.
router.include_format_suffixes = False
router.register("tasks", TaskViewSet, basename="task")
router.register("topics", TopicViewSet, basename="topic")
router.register("groups", GroupViewSet, basename="consumergroup")
router.register("slices", SliceViewSet, basename="slice")
router.register("members", MemberViewSet, basename="member")
router.register("stats", StatsViewSet, basename="stats")

urlpatterns = [
    path(
        "schema/",
        SpectacularAPIView.as_view(permission_classes=[AllowAny]),
        name="schema",
    ),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(
            url_name="schema", permission_classes=[AllowAny]
        ),
        name="docs",
    ),
    # Log-in and log-out pages for the browsable API (session authentication).
    path("auth/", include("rest_framework.urls")),
    path("auth/token/", TokenView.as_view(), name="auth-token"),
    path("", include(router.urls)),
]
