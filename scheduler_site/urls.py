"""Top-level routes: the REST API, the seed-compatible routes, admin, health."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("tasks_app.api.urls")),
    path("", include("tasks_app.api.seed_urls")),
]
