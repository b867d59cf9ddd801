"""The /metrics route (no trailing slash: Prometheus' default path)."""

from django.urls import path

from tasks_app.metrics.views import metrics_view

urlpatterns = [path("metrics", metrics_view, name="metrics")]
