"""`/api/slices/`, `/api/members/`, `/api/stats/`: the rotation's records and state."""

import base64
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from rotation.members import Members
from scheduler_site.devstack.process import free_port
from tasks_app.models import LaneState, OutboxEntry, PartitionHead, Task, TaskStatus
from tasks_app.redis_client import redis_client
from tasks_app.selectors import stats_overview
from tests.factories import GroupFactory, SliceFactory, TopicFactory

# A private Redis database, so other tests' workers never show up as members.
MEMBERS_DB = 13
# Long enough that a member beat at the start of a test is alive at its end.
HEARTBEAT_S = 600.0


@pytest.fixture
def members(redis_at, settings):
    """Return Members on an empty Redis database that the API reads too."""
    settings.SCHEDULER_HEARTBEAT_S = HEARTBEAT_S
    redis_at(urlsplit(settings.REDIS_URL)._replace(path=f"/{MEMBERS_DB}").geturl())
    client = redis_client()
    client.flushdb()
    registry = Members(client, heartbeat_s=HEARTBEAT_S)
    yield registry
    for name in registry.live():
        registry.leave(name)


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    "url", ["/api/slices/", "/api/slices/1/", "/api/members/", "/api/stats/"]
)
def test_anonymous_callers_are_refused(anon_client, db, url):
    response = anon_client.get(url)

    assert response.status_code == 401
    assert response.data["detail"] == "Authentication credentials were not provided."


@pytest.mark.parametrize("url", ["/api/slices/", "/api/members/", "/api/stats/"])
def test_the_rotation_routes_are_read_only(operator_client, url):
    assert operator_client.post(url, {}, format="json").status_code == 405


@pytest.mark.parametrize(
    "url",
    ["/api/", "/api/slices/", "/api/slices/{id}/", "/api/members/", "/api/stats/"],
)
def test_a_session_user_browses_the_rotation_routes_as_html(operator, members, url):
    recorded = SliceFactory()
    client = APIClient()
    client.force_login(operator)

    response = client.get(url.format(id=recorded.id), HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert b"Django REST framework" in response.content


def test_the_api_root_links_the_rotation_routes(operator_client):
    links = operator_client.get("/api/").data

    assert {"slices", "members", "stats"} <= set(links)


def test_slices_are_listed_newest_first_with_lane_names_and_duration(operator_client):
    older = SliceFactory()
    newer = SliceFactory(topic=older.topic, group=older.group, token=older.token + 1)

    response = operator_client.get("/api/slices/")

    assert response.status_code == 200
    assert [row["id"] for row in response.data["results"]] == [newer.id, older.id]
    row = response.data["results"][1]
    assert row["group"] == older.group.group_id
    assert row["topic"] == older.topic.name
    assert row["duration_ms"] == 1500
    assert row["url"].endswith(f"/api/slices/{older.id}/")
    assert {k: row[k] for k in ("partition", "member", "token", "end_reason")} == {
        "partition": 0,
        "member": "celery@host-a",
        "token": older.token,
        "end_reason": "drained",
    }
    assert (row["messages"], row["first_offset"], row["last_offset"]) == (3, 10, 12)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("topic=t-two", ["two"]),
        ("group=g-two", ["two"]),
        ("member=celery@host-b", ["two"]),
        ("end_reason=deadline", ["two"]),
        ("partition=0", ["one"]),
        ("partition=1&member=celery@host-b", ["two"]),
        ("partition=1&member=celery@host-a", []),
        ("", ["two", "one"]),
    ],
)
def test_the_slice_list_filters_by_each_query_field(operator_client, query, expected):
    slices = {
        "one": SliceFactory(),
        "two": SliceFactory(
            topic=TopicFactory(name="t-two"),
            group=GroupFactory(group_id="g-two"),
            member="celery@host-b",
            end_reason="deadline",
            partition=1,
        ),
    }

    response = operator_client.get(f"/api/slices/?{query}")

    assert response.status_code == 200
    assert [row["id"] for row in response.data["results"]] == [
        slices[name].id for name in expected
    ]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("end_reason=bored", "end_reason: Unknown end reason 'bored'. Valid reasons: "),
        ("partition=-1", "partition: Ensure this value is greater than or equal to 0"),
        ("partition=first", "partition: A valid integer is required."),
    ],
)
def test_a_bad_slice_filter_is_refused_naming_it(operator_client, query, says):
    response = operator_client.get(f"/api/slices/?{query}")

    assert response.status_code == 400
    assert response.data["detail"].startswith(says)


def test_the_slice_list_pages_with_a_cursor(operator_client):
    first = SliceFactory()
    created = [
        first,
        *SliceFactory.create_batch(4, topic=first.topic, group=first.group),
    ]

    seen, url = [], "/api/slices/?page_size=2"
    while url:
        response = operator_client.get(url)
        assert len(response.data["results"]) <= 2
        seen += [row["id"] for row in response.data["results"]]
        url = response.data["next"]

    assert seen == sorted((s.id for s in created), reverse=True)


def test_one_slice_is_retrieved_by_id(operator_client):
    recorded = SliceFactory(end_reason="lease_lost")

    response = operator_client.get(f"/api/slices/{recorded.id}/")

    assert response.status_code == 200
    assert response.data["id"] == recorded.id
    assert response.data["end_reason"] == "lease_lost"


def test_an_unknown_slice_answers_404(operator_client):
    response = operator_client.get("/api/slices/999999999/")

    assert response.status_code == 404
    assert response.data["code"] == "not_found"


def test_members_lists_each_live_member_with_its_lane_and_heartbeat(
    operator_client, members
):
    beat_at = float(int(time.time()))
    stamped = Members(members.client, heartbeat_s=HEARTBEAT_S, clock=lambda: beat_at)
    stamped.beat("celery@b", hostname="host-b", pid=12, lane="")
    stamped.beat("celery@a", hostname="host-a", pid=11, lane="default/A/0")

    response = operator_client.get("/api/members/")

    assert response.status_code == 200
    assert response.json() == [
        {
            "name": "celery@a",
            "hostname": "host-a",
            "pid": 11,
            "lane": "default/A/0",
            "last_heartbeat": _iso(beat_at),
        },
        {
            "name": "celery@b",
            "hostname": "host-b",
            "pid": 12,
            "lane": "",
            "last_heartbeat": _iso(beat_at),
        },
    ]


def test_a_member_that_stopped_beating_is_not_listed(operator_client, members):
    long_ago = time.time() - HEARTBEAT_S * 10
    Members(members.client, heartbeat_s=HEARTBEAT_S, clock=lambda: long_ago).beat(
        "celery@gone", hostname="h", pid=1
    )
    members.beat("celery@here", hostname="h", pid=2)

    response = operator_client.get("/api/members/")

    assert [member["name"] for member in response.data] == ["celery@here"]


def test_a_member_that_left_is_not_listed(operator_client, members):
    members.beat("celery@leaving", hostname="h", pid=3)
    members.leave("celery@leaving")

    assert operator_client.get("/api/members/").data == []


@pytest.mark.parametrize("url", ["/api/members/", "/api/stats/"])
def test_reads_of_live_state_answer_503_naming_redis_when_it_is_down(
    operator_client, redis_at, url
):
    redis_at(f"redis://127.0.0.1:{free_port()}/0")

    response = operator_client.get(url)

    assert response.status_code == 503
    assert response.data["service"] == "redis"
    assert response.data["code"] == "service_unavailable"
    assert response.data["detail"].startswith("Redis is unreachable, so the live ")
    assert "REDIS_URL" in response.data["detail"]
    assert response["Retry-After"] == "5"


def _task(topic, status: str) -> Task:
    return Task.objects.create(topic=topic, key=topic.name, message=1, status=status)


def test_stats_count_tasks_by_status_overall_and_per_topic(operator_client, members):
    busy = TopicFactory(name="busy", rate_limit=2.5)
    idle = TopicFactory(name="idle", paused=True)
    for status in ["pending", "pending", "succeeded", "dead"]:
        _task(busy, status)

    body = operator_client.get("/api/stats/").json()

    zero = dict.fromkeys(TaskStatus.values, 0)
    busy_counts = {**zero, "pending": 2, "succeeded": 1, "dead": 1}
    assert body["tasks"] == {"total": 4, "by_status": busy_counts}
    assert body["topics"] == [
        {
            "topic": busy.name,
            "paused": False,
            "rate_limit": 2.5,
            "tasks": {"total": 4, "by_status": busy_counts},
        },
        {
            "topic": idle.name,
            "paused": True,
            "rate_limit": None,
            "tasks": {"total": 0, "by_status": zero},
        },
    ]


def test_stats_count_only_outbox_entries_that_are_due(operator_client, members):
    topic = TopicFactory()
    now = timezone.now()
    for available_at in [now - timedelta(seconds=1), now, now + timedelta(hours=1)]:
        OutboxEntry.objects.create(
            task=_task(topic, "pending"),
            topic_name=topic.name,
            key=topic.name,
            envelope="{}",
            available_at=available_at,
        )

    assert operator_client.get("/api/stats/").data["outbox_due"] == 2


def test_stats_show_each_lanes_resume_point_log_end_and_lag(operator_client, members):
    topic = TopicFactory(name="lagging", partitions=2, paused=True)
    group = GroupFactory(group_id="readers")
    group.topics.add(topic)
    LaneState.objects.create(group=group, topic=topic, partition=0, next_offset=7)
    PartitionHead.objects.create(topic=topic, partition=0, end_offset=10)
    PartitionHead.objects.create(topic=topic, partition=1, end_offset=4)

    lanes = operator_client.get("/api/stats/").json()["lanes"]

    lane = {"group": "readers", "topic": "lagging", "paused": True}
    assert lanes == [
        {**lane, "partition": 0, "next_offset": 7, "end_offset": 10, "lag": 3},
        {**lane, "partition": 1, "next_offset": 0, "end_offset": 4, "lag": 4},
    ]


def test_stats_list_no_lanes_for_a_topic_no_group_consumes(operator_client, members):
    PartitionHead.objects.create(topic=TopicFactory(), partition=0, end_offset=5)

    assert operator_client.get("/api/stats/").data["lanes"] == []


def test_stats_count_the_live_members(operator_client, members):
    members.beat("celery@one", hostname="h", pid=1)
    members.beat("celery@two", hostname="h", pid=2)

    assert operator_client.get("/api/stats/").data["members"] == 2


def test_stats_take_six_queries_however_many_topics_and_lanes(
    db, members, django_assert_num_queries
):
    group = GroupFactory()
    for number in range(5):
        topic = TopicFactory(partitions=3)
        group.topics.add(topic)
        _task(topic, "pending")
        LaneState.objects.create(group=group, topic=topic, partition=number % 3)
        PartitionHead.objects.create(topic=topic, partition=0, end_offset=number)

    with django_assert_num_queries(6):
        overview = stats_overview()

    assert len(overview.lanes) == 15


def test_a_cursor_with_a_position_that_is_not_an_id_is_a_400(operator_client):
    cursor = base64.b64encode(b"o=0&r=0&p=abc").decode()

    response = operator_client.get("/api/slices/", {"cursor": cursor})

    assert response.status_code == 400
    assert response.json()["field"] == "cursor"


@pytest.mark.parametrize("url", ["/api/topics/", "/api/groups/"])
def test_a_name_cursor_holding_a_nul_is_a_400(operator_client, url):
    cursor = base64.b64encode(b"o=0&r=0&p=a%00b").decode()

    response = operator_client.get(url, {"cursor": cursor})

    assert response.status_code == 400
    assert response.json()["field"] == "cursor"
