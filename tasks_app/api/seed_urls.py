"""Root-level routes: the Rust seed's task routes and the health check.

Both spellings of each seed route (with and without the trailing slash) answer
directly, since a redirect would turn the seed clients' POST into a GET.
"""

from django.urls import path

from tasks_app.api.health import healthz
from tasks_app.api.views import SeedGenerateView, SeedPendingView

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("tasks/generate", SeedGenerateView.as_view(), name="seed-generate"),
    path("tasks/generate/", SeedGenerateView.as_view(schema=None)),
    path("tasks", SeedPendingView.as_view(), name="seed-pending"),
    path("tasks/", SeedPendingView.as_view(schema=None)),
]
