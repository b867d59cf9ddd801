"""Who may read /metrics, what it says without Redis, and the rotation events
no table records (fencing refusals, heals), counted in Redis."""

import pytest
import redis
from django.test import Client

from rotation.lanes import Lane
from rotation.store import Fenced
from tasks_app.models import ConsumerGroup, GroupTopic
from tasks_app.services.rotation_events import rotation_event_totals
from tests.lane_harness import lane_store
from tests.metrics_scrape import samples, value
from tests.rotation_support import make_topic

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests-0123456789abcdef"


@pytest.fixture(autouse=True)
def _token(settings):
    settings.METRICS_TOKEN = TOKEN


def _get(client: Client | None = None, **headers: str):
    return (client or Client()).get("/metrics", headers=headers)


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_prometheus_with_the_token_reads_the_metrics():
    response = _get(Authorization=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "# TYPE scheduler_tasks_submitted_total counter" in response.text


def test_without_a_credential_the_answer_is_401_and_asks_for_a_bearer_token():
    response = _get()

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "METRICS_TOKEN" in response.json()["detail"]


def test_a_wrong_token_is_refused():
    response = _get(Authorization=f"Bearer {TOKEN[:-1]}x")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_with_no_token_configured_no_token_is_accepted(settings):
    settings.METRICS_TOKEN = ""

    assert _get(Authorization="Bearer ").status_code == 401
    assert _get(Authorization="Bearer x").status_code == 401


def test_a_submitter_gets_403(submitter):
    response = _get(_signed_in(submitter))

    assert response.status_code == 403
    assert "view_rotation" in response.json()["detail"]


def test_an_operator_signed_in_reads_the_metrics(operator):
    assert _get(_signed_in(operator)).status_code == 200


def test_only_get_is_answered():
    client = Client()
    response = client.post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 405


def test_without_redis_the_database_figures_still_answer(monkeypatch, topic_name):
    make_topic(topic_name)
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.5)
    for module in (
        "tasks_app.selectors",
        "tasks_app.selectors.rotation",
        "tasks_app.services.rotation_events",
    ):
        monkeypatch.setattr(f"{module}.redis_client", lambda: unreachable)

    response = _get(Authorization=f"Bearer {TOKEN}")

    assert response.status_code == 200
    found = samples(response.text)
    assert value(found, "scheduler_metrics_redis_up") == 0
    assert value(found, "scheduler_tasks_submitted_total", topic=topic_name) == 0
    assert not any(name == "scheduler_members_live" for name, _ in found)


@pytest.mark.django_db(transaction=True)  # a claim is its own transaction
def test_a_stale_token_refused_by_the_fence_is_counted(topic_name):
    make_topic(topic_name)
    group = ConsumerGroup.objects.get(group_id="default")
    assert GroupTopic.objects.filter(group=group, topic__name=topic_name).exists()
    lane = Lane("default", topic_name, 0)
    store = lane_store()
    store.claim(lane, 7)

    for stale in (7, 3):
        with pytest.raises(Fenced):
            store.claim(lane, stale)

    assert rotation_event_totals()["fenced", "default", topic_name] == 2
    found = samples(_get(Authorization=f"Bearer {TOKEN}").text)
    assert (
        value(
            found, "scheduler_fencing_refusals_total", group="default", topic=topic_name
        )
        == 2
    )
