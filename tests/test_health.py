"""`/healthz`: 200 when PostgreSQL, Redis and Kafka answer, else 503 naming which."""

import pytest

from scheduler_site.devstack.process import free_port


def test_health_is_ok_when_every_service_answers(anon_client, db):
    response = anon_client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "services": {"postgresql": "ok", "redis": "ok", "kafka": "ok"},
    }


def test_health_answers_503_naming_kafka_when_the_broker_is_down(
    anon_client, db, settings
):
    settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{free_port()}"

    response = anon_client.get("/healthz")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["services"] == {
        "postgresql": "ok",
        "redis": "ok",
        "kafka": "unavailable",
    }
    assert set(body["errors"]) == {"kafka"}
    assert body["errors"]["kafka"].startswith("KafkaException")


def test_health_answers_503_naming_redis_when_redis_is_down(anon_client, db, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"

    response = anon_client.get("/healthz")

    body = response.json()
    assert response.status_code == 503
    assert body["services"]["redis"] == "unavailable"
    assert "Connection refused" in body["errors"]["redis"]
    assert set(body["errors"]) == {"redis"}


@pytest.mark.parametrize("method", ["post", "delete"])
def test_health_refuses_methods_that_change_things(anon_client, db, method):
    assert getattr(anon_client, method)("/healthz").status_code == 405
