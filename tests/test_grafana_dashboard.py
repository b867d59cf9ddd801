"""docs/monitoring/grafana-dashboard.json parses as a dashboard, and every
metric its queries name is one /metrics exposes (a renamed metric cannot leave
a panel silently empty). The scrape config and the compose profile agree."""

import json
import re
from pathlib import Path

import pytest
import yaml
from django.test import Client

from tests.metrics_scrape import exposed_names
from tests.rotation_support import make_topic

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[1]
MONITORING = REPO / "docs" / "monitoring"
METRIC = re.compile(r"\bscheduler_[a-z0-9_]+\b")


def _dashboard() -> dict:
    return json.loads((MONITORING / "grafana-dashboard.json").read_text())


def _queries(dashboard: dict) -> list[str]:
    """Every PromQL text of the panels and the template variables."""
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    variables = [
        variable["definition"]
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]
    return exprs + variables


def test_the_dashboard_is_grafana_json_with_panels_that_query_prometheus():
    dashboard = _dashboard()

    assert dashboard["uid"] == "workload-scheduler"
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len(panels) >= 15
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["type"] == "prometheus", panel["title"]


def test_every_metric_the_dashboard_queries_is_one_metrics_exposes(
    settings, topic_name
):
    settings.METRICS_TOKEN = "t" * 40
    make_topic(topic_name)
    response = Client().get("/metrics", headers={"Authorization": "Bearer " + "t" * 40})
    exposed = exposed_names(response.text)

    queried = {
        name for query in _queries(_dashboard()) for name in METRIC.findall(query)
    }

    assert len(queried) >= 20
    assert queried <= exposed, sorted(queried - exposed)


def test_prometheus_scrapes_web_with_the_token_compose_hands_it():
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())

    (job,) = config["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["web:8000"]}]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    prometheus = compose["services"]["prometheus"]
    assert prometheus["secrets"] == ["metrics_token"]
    assert compose["secrets"]["metrics_token"] == {"environment": "METRICS_TOKEN"}
    for service in ("prometheus", "grafana"):
        assert compose["services"][service]["profiles"] == ["monitoring"]
    assert "web" in compose["x-app"]["environment"]["ALLOWED_HOSTS"]
