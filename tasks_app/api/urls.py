"""Routes under /api/: tasks, topics, groups, slices, members, stats, schema, docs;
the root lists them and links the dashboard."""

from typing import Any

from django.urls import include, path, reverse
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import APIRootView, DefaultRouter

from tasks_app.api.views import (
    GroupViewSet,
    MemberViewSet,
    SliceViewSet,
    StatsViewSet,
    TaskViewSet,
    TokenView,
    TopicViewSet,
)


class ApiRootView(APIRootView):
    """The API root's links, plus the operators' dashboard (a page, not a route)."""

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().get(request, *args, **kwargs)
        response.data["dashboard"] = request.build_absolute_uri(
            reverse("dashboard:index")
        )
        return response


router = DefaultRouter()
router.APIRootView = ApiRootView
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
