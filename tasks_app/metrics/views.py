"""GET /metrics: the scheduler's figures in Prometheus' text format."""

import os

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from tasks_app.metrics.access import metrics_denial
from tasks_app.metrics.collector import SchedulerCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Answer a scrape, or 401/403 for a caller without the credential."""
    denied = metrics_denial(request)
    if denied is not None:
        return denied
    return HttpResponse(
        generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST
    )


class _ThisProcess(Collector):
    """This process's own metrics (the default registry)."""

    def collect(self) -> list[Metric]:
        return list(REGISTRY.collect())


def scrape_registry() -> CollectorRegistry:
    """The scheduler's figures, then the web processes' own.

    Under gunicorn every worker process keeps its own values; with
    PROMETHEUS_MULTIPROC_DIR set they write them to files there, and the
    process answering the scrape sums them (prometheus_client's multiprocess
    mode; scheduler_site/gunicorn_conf.py clears the directory at start and
    drops the files of workers that exit).
    """
    registry = CollectorRegistry()
    registry.register(SchedulerCollector())
    if os.environ.get(MULTIPROCESS_ENV):
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    return registry
