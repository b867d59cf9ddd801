"""Flower beside the scheduler: a real Flower process on the test Redis broker sees
the rotation worker and the Celery tasks it ran, from the workers' own events.

The module's cluster (the `worker` fixture) runs with CELERY_SEND_EVENTS=1, and
Flower with FLOWER_ENABLE_EVENTS=false: Flower then never asks the workers to
send events, so every event it shows was sent because the setting asked.
"""

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from scheduler_site.devstack.process import free_port
from tests.cluster import START_TIMEOUT_S, settle, wait_for
from tests.rotation_support import make_topic, submit, wait_all_finished

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN = "flower-test:not-a-real-secret"


@pytest.fixture(scope="module")
def worker_env() -> dict[str, str]:
    """Workers send task events; Flower logs in with LOGIN and enables nothing."""
    return {
        "CELERY_SEND_EVENTS": "1",
        "FLOWER_BASIC_AUTH": LOGIN,
        "FLOWER_ENABLE_EVENTS": "false",
    }


@pytest.fixture(scope="module")
def flower(worker) -> str:
    """Start Flower beside the module's cluster; return its base URL."""
    port = free_port()
    worker.flower(port)
    base = f"http://127.0.0.1:{port}"
    wait_for(
        lambda: _status(f"{base}/healthcheck") == 200,
        timeout_s=START_TIMEOUT_S,
        what="Flower to answer",
        interval_s=0.2,
    )
    return base


def _status(url: str) -> int | None:
    """Return the HTTP status of a GET without credentials; None if nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def _get_json(url: str) -> Any:
    """GET a Flower URL with the login and decode its JSON."""
    token = base64.b64encode(LOGIN.encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def test_flower_refuses_its_api_and_pages_without_the_login(flower):
    assert _status(f"{flower}/api/workers") == 401
    assert _status(f"{flower}/workers") == 401


def test_flower_shows_the_worker_from_its_events(flower, worker):
    node = worker.node("w1")

    def online() -> bool:
        seen = _get_json(f"{flower}/workers?json=1")["data"]
        return any(item["hostname"] == node and item["status"] for item in seen)

    wait_for(online, timeout_s=START_TIMEOUT_S, what=f"Flower to see {node} online")
    assert node in _get_json(f"{flower}/api/workers?refresh=1")


def test_flower_lists_the_rotation_turns_the_worker_ran(flower, worker, topic_name):
    node = worker.node("w1")
    make_topic(topic_name, slice_ms=200)
    submit(topic_name, [{"n": n} for n in range(5)])
    wait_all_finished(topic_name, 5, timeout_s=60)

    def turns_succeeded() -> list[dict[str, Any]]:
        tasks = _get_json(
            f"{flower}/api/tasks?workername={node}&taskname=tasks_app.tasks.run_slice"
        )
        return [task for task in tasks.values() if task["state"] == "SUCCESS"]

    turns = wait_for(turns_succeeded, timeout_s=30, what="Flower to list the turns")
    assert all(task["worker"] == node for task in turns)
    assert all(task["received"] and task["started"] for task in turns)
    settle(worker)


def test_flower_shows_the_celery_queue_lengths(flower, worker):
    _get_json(f"{flower}/api/workers?refresh=1")  # Flower learns the queues here

    lengths = _get_json(f"{flower}/api/queues/length")["active_queues"]

    names = {queue["name"] for queue in lengths}
    assert "rotation" in names
    assert all(isinstance(queue["messages"], int) for queue in lengths)
