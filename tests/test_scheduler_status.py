"""`manage.py scheduler_status`: members and lanes read from real services while a
real worker (the `worker` fixture) processes a lane."""

import json
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db.models import Sum

from rotation.lanes import Lane
from rotation.lease import LeaseManager
from rotation.members import INFO_PREFIX, MEMBERS_KEY
from scheduler_site.devstack.process import free_port
from tasks_app.models import Slice
from tasks_app.redis_client import redis_client
from tasks_app.selectors import lane_stats, member_list, members_reader
from tasks_app.selectors import status as status_selector
from tests.cluster import settle, wait_for, worker_database_url
from tests.handlers import runs
from tests.rotation_support import make_topic, submit, wait_all_finished

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[1]
# A Redis database no worker beats into, for a system without members.
EMPTY_REDIS_DB = 14


def status_json(*args: str) -> list[dict]:
    """Run the command with --json and return each JSON line it printed."""
    out = StringIO()
    call_command("scheduler_status", "--json", *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def lane_of(status: dict, topic: str) -> dict:
    [lane] = [lane for lane in status["lanes"] if lane["topic"] == topic]
    return lane


def member_of(status: dict, name: str) -> dict:
    [member] = [member for member in status["members"] if member["name"] == name]
    return member


@pytest.fixture
def gate(worker):
    """Return a Redis list a gated task waits on; open it, and settle, after."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    name = f"test:gate:{uuid.uuid4().hex}"
    yield name
    client.rpush(name, "open")
    settle(worker)
    client.delete(name)


def test_a_lane_in_a_slice_shows_its_holder_lag_and_resume_point(
    worker, gate, topic_name
):
    node = worker.node("w1")
    make_topic(topic_name, slice_ms=500)
    submit(topic_name, [{"n": n} for n in range(3)])
    wait_all_finished(topic_name, 3, timeout_s=60)
    submit(topic_name, [{"wait_for": gate}] + [{"n": n} for n in range(4)])
    wait_for(
        lambda: any(run["phase"] == "start" for run in runs(topic_name)[6:]),
        timeout_s=60,
        what="the gated task to start",
    )

    [status] = status_json()

    lane = lane_of(status, topic_name)
    assert lane["holder"] == node
    assert (lane["next_offset"], lane["lag"]) == (3, 5)
    [api_lane] = [stats for stats in lane_stats() if stats.topic == topic_name]
    assert (lane["end_offset"], lane["lag"]) == (api_lane.end_offset, api_lane.lag)
    member = member_of(status, node)
    assert member["live"]
    assert member["lane"] == f"default/{topic_name}/0"
    assert (
        member["hostname"] == next(m for m in member_list() if m.name == node).hostname
    )
    assert datetime.fromisoformat(member["last_heartbeat"]) <= datetime.fromisoformat(
        status["taken_at"]
    )
    taken_at = datetime.fromisoformat(status["taken_at"])
    recorded = Slice.objects.filter(
        member=node, ended_at__gte=taken_at - timedelta(minutes=5)
    )
    assert member["slices"] == recorded.count() >= 1
    assert member["messages"] == recorded.aggregate(n=Sum("messages"))["n"] >= 3


def test_a_drained_lane_has_no_lag_no_holder_and_shows_its_last_slice(
    worker, topic_name
):
    node = worker.node("w1")
    make_topic(topic_name, slice_ms=500)
    submit(topic_name, [{"n": n} for n in range(4)])
    wait_all_finished(topic_name, 4, timeout_s=60)

    def drained() -> dict | None:
        lane = lane_of(status_json()[0], topic_name)
        return lane if lane["holder"] == "" and lane["last_slice"] else None

    lane = wait_for(drained, timeout_s=30, what="the lane's holder to let go")
    assert (lane["next_offset"], lane["lag"]) == (4, 0)
    newest = Slice.objects.filter(topic__name=topic_name).order_by("-id").first()
    assert lane["last_slice"]["member"] == newest.member == node
    assert lane["last_slice"]["end_reason"] == newest.end_reason
    settle(worker)


def test_a_lanes_holder_is_the_member_holding_its_lease(db, topic_name):
    make_topic(topic_name)
    lane = Lane(settings.SCHEDULER_DEFAULT_GROUP, topic_name, 0)
    leases = LeaseManager(redis_client())
    lease = leases.acquire(lane, owner="w9@elsewhere", ttl_ms=60_000)
    assert lease is not None
    try:
        held = lane_of(status_json()[0], topic_name)["holder"]
    finally:
        leases.release(lease)

    assert held == "w9@elsewhere"
    assert lane_of(status_json()[0], topic_name)["holder"] == ""


def test_a_heartbeat_during_the_reads_is_not_newer_than_the_status(db, monkeypatch):
    """A member that beats while the status is being read must not look as if
    it beat after the moment the status says it was taken."""
    name = f"beat-{uuid.uuid4().hex[:8]}@test"
    members = members_reader()
    real_activity = status_selector.slice_activity

    def activity_then_a_heartbeat(*, window):
        found = real_activity(window=window)
        members.beat(name, hostname="test", pid=1)
        return found

    monkeypatch.setattr(status_selector, "slice_activity", activity_then_a_heartbeat)
    try:
        [status] = status_json()
    finally:
        members.client.zrem(MEMBERS_KEY, name)
        members.client.delete(INFO_PREFIX + name)

    beat = datetime.fromisoformat(member_of(status, name)["last_heartbeat"])
    assert beat <= datetime.fromisoformat(status["taken_at"])


def test_the_tables_list_the_member_and_the_lane(worker, gate, topic_name):
    node = worker.node("w1")
    make_topic(topic_name, slice_ms=500)
    submit(topic_name, [{"wait_for": gate}, {"n": 1}])
    wait_for(lambda: runs(topic_name), timeout_s=60, what="the gated task to start")
    out = StringIO()

    call_command("scheduler_status", stdout=out)

    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in out.getvalue().splitlines()
        if "│" in line
    ]
    assert [node, worker.members.describe()[0].hostname] == next(
        row[:2] for row in rows if row[0] == node
    )
    lane_row = next(row for row in rows if topic_name in row)
    assert lane_row[:7] == ["default", topic_name, "0", "", "2", "0", node]


def test_watch_redraws_the_given_number_of_times(worker):
    draws = status_json("--watch", "0.05", "--count", "3")

    assert len(draws) == 3
    assert draws[0]["taken_at"] < draws[1]["taken_at"] < draws[2]["taken_at"]


def _sigint_as_at_a_terminal() -> None:
    """Give the child SIGINT's default action. A suite started in the
    background by a non-interactive shell ignores SIGINT, its children inherit
    that, and Python then never raises KeyboardInterrupt: Ctrl-C at a terminal
    is what this test stands for."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_watch_stops_quietly_on_ctrl_c(worker, tmp_path):
    output = tmp_path / "status.out"
    env = {**worker.env, "DATABASE_URL": worker_database_url()}
    with output.open("wb") as sink:
        watching = subprocess.Popen(
            [sys.executable, "manage.py", "scheduler_status", "--watch", "0.1"],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=_sigint_as_at_a_terminal,
        )
    try:
        wait_for(
            lambda: output.read_text().count("Scheduler status at") >= 2,
            timeout_s=60,
            what="two draws",
        )
        watching.send_signal(signal.SIGINT)
        assert watching.wait(timeout=30) == 0
    finally:
        if watching.poll() is None:
            watching.kill()
            watching.wait()
    assert "Traceback" not in output.read_text()


def test_a_lost_redis_is_named_with_what_to_do(db, redis_at):
    redis_at(f"redis://127.0.0.1:{free_port()}/0")

    with pytest.raises(CommandError, match=r"Redis is unreachable.*REDIS_URL"):
        call_command("scheduler_status", stdout=StringIO())


def test_watch_keeps_going_while_redis_is_lost(db, redis_at):
    redis_at(f"redis://127.0.0.1:{free_port()}/0")
    out, err = StringIO(), StringIO()

    call_command(
        "scheduler_status", "--watch=0.01", "--count=2", stdout=out, stderr=err
    )

    assert err.getvalue().count("Redis is unreachable") == 2
    assert out.getvalue() == ""


def test_an_empty_system_says_what_to_start(db, redis_at, settings):
    redis_at(urlsplit(settings.REDIS_URL)._replace(path=f"/{EMPTY_REDIS_DB}").geturl())
    redis_client().flushdb()
    out = StringIO()

    call_command("scheduler_status", stdout=out)

    assert "(no live members: start a worker)" in out.getvalue()
    assert "(no topics yet)" in out.getvalue()


@pytest.mark.parametrize(
    "args",
    [["--watch", "0"], ["--minutes", "-1"], ["--count", "2"], ["--watch", "--count=0"]],
)
def test_nonsense_options_are_refused(db, args):
    with pytest.raises(CommandError):
        call_command("scheduler_status", *args, stdout=StringIO())
