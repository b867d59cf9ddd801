"""Top-level routes: the REST API, the seed-compatible routes, admin, the
operators' dashboard, /metrics, health, and the JSON error answers for requests no view
handles."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("tasks_app.api.urls")),
    path("dashboard/", include("tasks_app.dashboard.urls")),
    path("", include("tasks_app.metrics.urls")),
    path("", include("tasks_app.api.seed_urls")),
]

handler400 = "tasks_app.api.site_errors.bad_request"
handler404 = "tasks_app.api.site_errors.page_not_found"
handler500 = "tasks_app.api.site_errors.server_error"
