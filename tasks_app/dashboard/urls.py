"""Routes under /dashboard/: the page, its JSON, and the operators' actions."""

from django.urls import path

from tasks_app.dashboard.views import (
    DashboardDataView,
    DashboardView,
    TaskRetryView,
    TopicPausedView,
)

app_name = "dashboard"
urlpatterns = [
    path("", DashboardView.as_view(), name="index"),
    path("data/", DashboardDataView.as_view(), name="data"),
    path(
        "topics/<str:name>/pause/",
        TopicPausedView.as_view(paused=True),
        name="topic-pause",
    ),
    path(
        "topics/<str:name>/resume/",
        TopicPausedView.as_view(paused=False),
        name="topic-resume",
    ),
    path("tasks/<str:task_id>/retry/", TaskRetryView.as_view(), name="task-retry"),
]
