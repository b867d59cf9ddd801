"""The operators' dashboard: who may open it, what its JSON reports, and its
actions (through the services, CSRF-checked). The page in a real browser, with
real workers, is tests/test_dashboard_browser.py."""

from datetime import timedelta

import pytest
import redis
from django.test import Client
from django.utils import timezone

from rotation.store import EndReason
from tasks_app.models import OutboxEntry, Slice, Task, TaskStatus, Topic
from tasks_app.services.tasks import TaskSpec, task_submit
from tasks_app.services.topics import group_default, topic_create

pytestmark = pytest.mark.django_db

PAGE = "/dashboard/"
DATA = "/dashboard/data/"


def _post_routes(topic: str, task: str) -> list[str]:
    return [
        f"/dashboard/topics/{topic}/pause/",
        f"/dashboard/topics/{topic}/resume/",
        f"/dashboard/tasks/{task}/retry/",
    ]


@pytest.fixture
def topic(topic_name) -> Topic:
    return topic_create(name=topic_name, weight=2)


@pytest.fixture
def dead_task(topic) -> Task:
    task = task_submit(submitted_by=None, spec=TaskSpec(topic=topic.name, message=1))
    OutboxEntry.objects.filter(task=task).delete()
    Task.objects.filter(pk=task.pk).update(
        status=TaskStatus.DEAD,
        attempts=3,
        finished_at=timezone.now(),
        error="Traceback (most recent call last):\n" + "  ...\n" * 200 + "E: boom",
    )
    return task


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _slice(topic: Topic, member: str, *, ago_s: float, length_s: float, **fields):
    ended = timezone.now() - timedelta(seconds=ago_s)
    return Slice.objects.create(
        group=group_default(),
        topic=topic,
        partition=0,
        member=member,
        token=1,
        started_at=ended - timedelta(seconds=length_s),
        ended_at=ended,
        **{"messages": 5, "end_reason": EndReason.DEADLINE, **fields},
    )


def test_a_signed_out_visitor_is_sent_to_the_admin_login():
    response = Client().get(PAGE)

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/dashboard/"


def test_the_json_answers_401_to_a_signed_out_visitor(topic, dead_task):
    client = Client()

    assert client.get(DATA).status_code == 401
    for url in _post_routes(topic.name, str(dead_task.uuid)):
        assert client.post(url).status_code == 401, url


@pytest.mark.parametrize("who", ["submitter", "nobody"])
def test_a_user_without_the_rotation_permission_gets_403_everywhere(
    request, who, topic, dead_task
):
    client = _signed_in(request.getfixturevalue(who))

    answers = {url: client.get(url).status_code for url in (PAGE, DATA)}
    for url in _post_routes(topic.name, str(dead_task.uuid)):
        answers[url] = client.post(url).status_code

    assert set(answers.values()) == {403}, answers
    topic.refresh_from_db()
    assert not topic.paused
    assert Task.objects.get(pk=dead_task.pk).status == TaskStatus.DEAD


def test_an_operator_opens_the_page_with_its_actions_allowed(operator):
    response = _signed_in(operator).get(PAGE)

    assert response.status_code == 200
    page = response.content.decode()
    assert "tasks_app/dashboard/dashboard.js" in page
    assert '"canChangeTopic": true' in page
    assert 'name="csrf-token"' in page


def test_the_admin_index_and_the_api_root_link_to_the_dashboard(operator):
    client = _signed_in(operator)

    admin_index = client.get("/admin/").content.decode()
    api_root = client.get("/api/", HTTP_ACCEPT="application/json").json()

    assert 'href="/dashboard/"' in admin_index
    assert api_root["dashboard"] == "http://testserver/dashboard/"


def test_the_json_reports_lanes_members_slices_and_shares(operator, topic):
    other = topic_create(name=f"{topic.name}-b")  # weight 1
    _slice(topic, "w1@h", ago_s=400, length_s=2)  # outside the 5-minute window
    _slice(topic, "w1@h", ago_s=10, length_s=2)
    _slice(topic, "w2@h", ago_s=5, length_s=2, first_offset=0, last_offset=4)
    _slice(other, "w1@h", ago_s=1, length_s=2)

    data = _signed_in(operator).get(DATA, {"window": 300}).json()

    lanes = {lane["lane"]: lane for lane in data["lanes"]}
    mine = lanes[f"default/{topic.name}/0"]
    assert (mine["lag"], mine["holder"], mine["paused"]) == (0, "", False)
    assert mine["last_slice"]["member"] == "w2@h"
    assert [s["member"] for s in data["timeline"]["slices"]] == [
        "w1@h",
        "w2@h",
        "w1@h",
    ]
    members = {m["name"]: m for m in data["members"]}
    assert (members["w1@h"]["slices"], members["w1@h"]["messages"]) == (2, 10)
    assert members["w1@h"]["live"] is False
    assert {t["name"] for t in data["fairness"]["topics"]} == {topic.name, other.name}
    assert data["errors"] == {}


def _topic_fairness(client: Client) -> tuple[dict, dict]:
    fairness = client.get(DATA).json()["fairness"]
    return {t["name"]: t for t in fairness["topics"]}, fairness


def test_where_lanes_contend_for_one_member_slice_time_is_due_by_weight(
    operator, topic
):
    light = topic_create(name=f"{topic.name}-b")  # weight 1 against 2
    # One member alternates: 2 s on the heavy lane, 1 s on the light one.
    turns = [(topic, 18, 2), (light, 17, 1), (topic, 15, 2), (light, 14, 1)]
    for turn, ago_s, length_s in turns:
        _slice(turn, "w1@h", ago_s=ago_s, length_s=length_s)

    topics, fairness = _topic_fairness(_signed_in(operator))

    assert topics[topic.name]["share"] == pytest.approx(2 / 3, abs=0.01)
    assert topics[topic.name]["fair_share"] == pytest.approx(2 / 3, abs=0.01)
    assert fairness["lanes_index"] == pytest.approx(1.0, abs=0.001)


def test_lanes_without_contention_each_deserve_their_whole_span_whatever_the_weights(
    operator, topic
):
    light = topic_create(name=f"{topic.name}-b")  # weight 1 against 2
    for ago_s in (18, 16):
        _slice(topic, "w1@h", ago_s=ago_s, length_s=2)
        _slice(light, "w2@h", ago_s=ago_s, length_s=2)

    topics, fairness = _topic_fairness(_signed_in(operator))

    assert topics[topic.name]["fair_share"] == pytest.approx(0.5, abs=0.01)
    assert topics[light.name]["fair_share"] == pytest.approx(0.5, abs=0.01)
    assert fairness["lanes_index"] == pytest.approx(1.0, abs=0.001)
    assert fairness["members_index"] == pytest.approx(1.0, abs=0.001)


def test_the_json_counts_finished_tasks_per_bucket_with_latency(operator, topic):
    now = timezone.now()
    tasks = [
        task_submit(submitted_by=None, spec=TaskSpec(topic=topic.name, message=i))
        for i in range(4)
    ]
    for seconds, task in zip([1, 2, 3, 4], tasks, strict=True):
        Task.objects.filter(pk=task.pk).update(
            status=TaskStatus.SUCCEEDED,
            created_at=now - timedelta(seconds=30 + seconds),
            finished_at=now - timedelta(seconds=30),
        )

    data = _signed_in(operator).get(DATA, {"window": 60}).json()

    assert data["bucket_s"] == 1
    busy = [b for b in data["throughput"] if b["succeeded"]]
    assert [b["succeeded"] for b in busy] == [4]
    assert busy[0]["latency_s"]["p50"] == pytest.approx(2.5, abs=0.01)
    assert busy[0]["latency_s"]["p99"] == pytest.approx(3.97, abs=0.01)
    assert sum(b["succeeded"] for b in data["throughput"]) == 4
    assert len(data["throughput"]) in (60, 61)


def test_a_window_not_offered_is_a_400(operator):
    response = _signed_in(operator).get(DATA, {"window": 7})

    assert response.status_code == 400
    assert response.json()["detail"] == "window must be one of 60, 300, 900 (seconds)."


def test_an_operator_pauses_and_resumes_a_topic_from_the_dashboard(operator, topic):
    client = _signed_in(operator)

    paused = client.post(f"/dashboard/topics/{topic.name}/pause/")
    topic.refresh_from_db()
    was_paused = topic.paused
    resumed = client.post(f"/dashboard/topics/{topic.name}/resume/")
    topic.refresh_from_db()

    assert paused.json() == {"topic": topic.name, "paused": True}
    assert was_paused
    assert resumed.json() == {"topic": topic.name, "paused": False}
    assert not topic.paused


def test_an_operator_retries_a_dead_task_listed_on_the_dashboard(operator, dead_task):
    client = _signed_in(operator)
    listed = client.get(DATA).json()["dead_tasks"]

    response = client.post(f"/dashboard/tasks/{dead_task.uuid}/retry/")

    assert [t["uuid"] for t in listed] == [str(dead_task.uuid)]
    assert listed[0]["error"].endswith("  ...\nE: boom")
    assert response.json() == {"task": str(dead_task.uuid), "status": "pending"}
    assert OutboxEntry.objects.filter(task=dead_task).exists()


def test_actions_refused_by_a_service_answer_its_status_and_reason(operator, topic):
    alive = task_submit(submitted_by=None, spec=TaskSpec(topic=topic.name, message=1))
    client = _signed_in(operator)

    not_dead = client.post(f"/dashboard/tasks/{alive.uuid}/retry/")
    no_topic = client.post("/dashboard/topics/no-such-topic/pause/")

    assert not_dead.status_code == 409
    assert "only dead tasks can be retried" in not_dead.json()["detail"]
    assert (no_topic.status_code, no_topic.json()["code"]) == (404, "not_found")


def test_actions_need_the_csrf_token(operator, topic):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)

    response = client.post(f"/dashboard/topics/{topic.name}/pause/")

    assert response.status_code == 403
    topic.refresh_from_db()
    assert not topic.paused


def test_without_redis_the_lanes_still_answer_and_the_error_names_redis(
    operator, topic, monkeypatch
):
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.5)
    for module in ("tasks_app.selectors", "tasks_app.selectors.rotation"):
        monkeypatch.setattr(f"{module}.redis_client", lambda: unreachable)

    data = _signed_in(operator).get(DATA).json()

    assert data["members"] is None
    assert [lane["holder"] for lane in data["lanes"]] == [None]
    assert set(data["errors"]) == {"members", "holders"}
    assert "Redis is unreachable" in data["errors"]["members"]
