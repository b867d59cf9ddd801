"""The operators' dashboard: the page, its JSON, and the actions it offers.

Access goes by permission, never by group name: the page and its data need
`view_rotation`; pausing and resuming a topic `change_topic`; retrying a task
`change_task`. Signed-out visitors of the page are sent to the admin's login;
the JSON routes answer 401 instead, and users without the permission 403.
"""

from typing import Any

from django.contrib import admin
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse, reverse_lazy
from django.views import View
from django.views.generic import TemplateView

from tasks_app.dashboard.payload import dashboard_data
from tasks_app.errors import InvalidInput, SchedulerError
from tasks_app.middleware import body_error
from tasks_app.roles import CHANGE_TASK, CHANGE_TOPIC, VIEW_ROTATION
from tasks_app.selectors import topic_by_name
from tasks_app.selectors.rotation import WINDOW_CHOICES_S
from tasks_app.services.tasks import task_retry
from tasks_app.services.topics import topic_set_paused

DEFAULT_WINDOW_S = 300
# How often the page asks for fresh data. Polling, not server-sent events: each
# answer is a whole snapshot from a few indexed queries, so a missed poll costs
# nothing, and no web worker is held open per watching browser (gunicorn's sync
# workers would each be tied up by one SSE stream).
POLL_INTERVAL_MS = 2000


class JsonPermissionView(View):
    """Answer JSON routes with the API's errors: 401 signed out, 403 without the
    permission, and a service's SchedulerError as its own status."""

    permission_required = ""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if not request.user.is_authenticated:
            return body_error(
                "Sign in first (the admin's login page), then reload.",
                code="not_authenticated",
                status=401,
            )
        if not request.user.has_perm(self.permission_required):
            return body_error(
                f"This needs the permission {self.permission_required}.",
                code="permission_denied",
                status=403,
            )
        try:
            return super().dispatch(request, *args, **kwargs)
        except SchedulerError as exc:
            return body_error(exc.message, code=exc.code, status=exc.status_code)


class DashboardView(PermissionRequiredMixin, TemplateView):
    """The page: panels filled and refreshed by dashboard.js from the JSON.

    A signed-out visitor is sent to the admin's login; a signed-in user
    without the permission gets 403 (PermissionRequiredMixin's rule).
    """

    permission_required = VIEW_ROTATION
    login_url = reverse_lazy("admin:login")
    template_name = "tasks_app/dashboard/index.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        user = self.request.user
        # The admin's header, user links and theme, around the panels.
        around = {
            **admin.site.each_context(self.request),
            "is_nav_sidebar_enabled": False,
        }
        return super().get_context_data(
            **around,
            config={
                "dataUrl": reverse("dashboard:data"),
                "pauseUrl": reverse("dashboard:topic-pause", args=["TOPIC"]),
                "resumeUrl": reverse("dashboard:topic-resume", args=["TOPIC"]),
                "retryUrl": reverse("dashboard:task-retry", args=["TASK"]),
                "pollMs": POLL_INTERVAL_MS,
                "windowS": DEFAULT_WINDOW_S,
                "canChangeTopic": user.has_perm(CHANGE_TOPIC),
                "canChangeTask": user.has_perm(CHANGE_TASK),
            },
            windows=[(seconds, f"{seconds // 60} min") for seconds in WINDOW_CHOICES_S],
            **kwargs,
        )


class DashboardDataView(JsonPermissionView):
    """Every panel's data over the chosen window (`?window=` seconds)."""

    permission_required = VIEW_ROTATION

    def get(self, request: HttpRequest) -> HttpResponse:
        return JsonResponse(dashboard_data(window_s=_window_s(request)))


def _window_s(request: HttpRequest) -> int:
    raw = request.GET.get("window", str(DEFAULT_WINDOW_S))
    if raw not in {str(seconds) for seconds in WINDOW_CHOICES_S}:
        choices = ", ".join(str(seconds) for seconds in WINDOW_CHOICES_S)
        raise InvalidInput(
            f"window must be one of {choices} (seconds).", field="window"
        )
    return int(raw)


class TopicPausedView(JsonPermissionView):
    """POST: pause or resume a topic (`paused` set per route) through the service."""

    permission_required = CHANGE_TOPIC
    paused = True

    def post(self, request: HttpRequest, name: str) -> HttpResponse:
        topic = topic_set_paused(topic=topic_by_name(name=name), paused=self.paused)
        return JsonResponse({"topic": topic.name, "paused": topic.paused})


class TaskRetryView(JsonPermissionView):
    """POST: send a dead task through the pipeline again."""

    permission_required = CHANGE_TASK

    def post(self, request: HttpRequest, task_id: str) -> HttpResponse:
        task = task_retry(task_id=task_id)
        return JsonResponse({"task": str(task.uuid), "status": task.status})
