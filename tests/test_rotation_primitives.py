"""The rotation's Redis primitives against a real Redis: leases, members, turns."""

import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
import redis

from rotation.lanes import Lane
from rotation.lease import LeaseKeeper, LeaseManager
from rotation.members import Members
from rotation.turns import PASS_KEY, Turns
from tests.cluster import redis_database


@pytest.fixture
def client() -> redis.Redis:
    """A private Redis database: the ready set is global to a database."""
    connection = redis_database(14)
    connection.flushdb()
    return connection


@pytest.fixture
def lane() -> Lane:
    return Lane(f"g-{uuid.uuid4().hex[:8]}", "topic", 0)


def test_rotation_imports_no_django():
    code = (
        "import sys, rotation.slice, rotation.scheduler; print('django' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": ""},
    )
    assert out.stdout.strip() == "False"


def test_lease_is_exclusive_until_released(client, lane):
    leases = LeaseManager(client)
    first = leases.acquire(lane, owner="a", ttl_ms=5000)
    assert first is not None
    assert leases.acquire(lane, owner="b", ttl_ms=5000) is None
    assert leases.release(first)
    assert leases.acquire(lane, owner="b", ttl_ms=5000) is not None


def test_fencing_tokens_increase_with_each_acquire(client, lane):
    leases = LeaseManager(client)
    tokens = []
    for owner in "abc":
        lease = leases.acquire(lane, owner=owner, ttl_ms=5000)
        tokens.append(lease.token)
        leases.release(lease)
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == 3


def test_stale_holder_cannot_renew_or_release_a_newer_lease(client, lane):
    leases = LeaseManager(client)
    stale = leases.acquire(lane, owner="a", ttl_ms=50)
    time.sleep(0.1)
    fresh = leases.acquire(lane, owner="b", ttl_ms=5000)
    assert fresh.token > stale.token
    assert not leases.renew(stale)
    assert not leases.release(stale)
    assert leases.holder(lane) == fresh.value


def _wait_in_thread(
    leases: LeaseManager,
    lane: Lane,
    wait_s: float,
    stop: threading.Event | None = None,
) -> dict:
    """Start a member waiting for the lane's lease; its answer lands in the dict."""
    answer: dict = {}

    def wait() -> None:
        answer["lease"], answer["resume_from"] = leases.acquire_on_release(
            lane, owner="b", ttl_ms=5000, wait_s=wait_s, stop=stop or threading.Event()
        )

    answer["thread"] = threading.Thread(target=wait)
    answer["thread"].start()
    return answer


def test_a_waiting_member_takes_the_lease_when_its_holder_releases_it(client, lane):
    """The next holder, woken before the slice ends, waits on the lease instead
    of on a wake-up sent after it; the release tells it where to read from."""
    leases = LeaseManager(client)
    holder = leases.acquire(lane, owner="a", ttl_ms=5000)
    answer = _wait_in_thread(leases, lane, wait_s=30)
    time.sleep(0.2)
    assert answer["thread"].is_alive()  # still waiting: the lease is held

    assert leases.release(holder, resume_from=42)
    answer["thread"].join(10)

    assert not answer["thread"].is_alive()
    assert answer["lease"].token > holder.token
    assert leases.holder(lane) == answer["lease"].value
    assert answer["resume_from"] == 42


def test_a_waiting_member_takes_a_lease_its_holder_left_to_expire(client, lane):
    """A holder that died after waking the next one never releases: the waiter
    takes the lease when it expires, not a watchdog tick later."""
    leases = LeaseManager(client)
    leases.acquire(lane, owner="a", ttl_ms=300)
    answer = _wait_in_thread(leases, lane, wait_s=30)
    answer["thread"].join(10)

    assert answer["lease"] is not None
    assert leases.holder(lane) == answer["lease"].value
    assert answer["resume_from"] == -1


@pytest.mark.parametrize("stale_bell", [False, True])
def test_a_waiting_member_gives_up_on_a_lease_held_past_its_wait(
    client, lane, stale_bell
):
    """Also when an earlier release rang the bell with nobody waiting: the
    bell is no lease, and the lease taken since stays its holder's."""
    leases = LeaseManager(client)
    if stale_bell:
        leases.release(leases.acquire(lane, owner="a", ttl_ms=5000), resume_from=7)
    holder = leases.acquire(lane, owner="c", ttl_ms=60_000)
    answer = _wait_in_thread(leases, lane, wait_s=0.3)
    answer["thread"].join(10)

    assert answer["lease"] is None
    assert leases.holder(lane) == holder.value


def test_a_waiting_member_stops_waiting_when_its_worker_shuts_down(client, lane):
    """A warm shutdown does not wait for the holder's release (up to a lease
    TTL): the waiter leaves the lease alone, and the holder, finding its early
    turn given up, queues the lane's next turn itself."""
    leases = LeaseManager(client)
    holder = leases.acquire(lane, owner="a", ttl_ms=600_000)
    stop = threading.Event()
    answer = _wait_in_thread(leases, lane, wait_s=600, stop=stop)
    time.sleep(0.2)
    assert answer["thread"].is_alive()  # waiting: the lease is held

    stop.set()
    answer["thread"].join(60)  # not a timing: without the stop it waits 600 s

    assert not answer["thread"].is_alive()
    assert answer["lease"] is None
    assert leases.holder(lane) == holder.value


def test_keeper_renews_past_the_ttl_and_reports_a_stolen_lease(client, lane):
    leases = LeaseManager(client)
    lease = leases.acquire(lane, owner="a", ttl_ms=300)
    with LeaseKeeper(leases, lease) as keeper:
        time.sleep(0.8)
        assert leases.holder(lane) == lease.value
        assert not keeper.lost.is_set()
        client.delete(lane.key("lease"))
        assert keeper.lost.wait(2)


def test_token_floor_moves_the_counter_past_a_database_epoch(client, lane):
    leases = LeaseManager(client)
    leases.raise_token_floor(lane, 41)
    assert leases.acquire(lane, owner="a", ttl_ms=1000).token == 42


def test_members_expire_after_missing_heartbeats(client):
    now = [1000.0]
    members = Members(client, heartbeat_s=1.0, clock=lambda: now[0])
    name = f"m-{uuid.uuid4().hex[:8]}"
    members.beat(name, hostname="h", pid=1)
    assert name in members.live()
    now[0] += 3.5
    assert name not in members.live()


def test_turn_goes_to_an_idle_member_other_than_the_last(client, lane):
    sent = []
    members = Members(client, heartbeat_s=60.0)
    a, b = (f"m-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for name in (a, b):
        members.beat(name, hostname="h", pid=1)
        members.mark_idle(name)
    turns = Turns(client, members, lambda turn, delay: sent.append(turn))
    turn = turns.enqueue(f"chain-{lane}", lane, exclude=[a])
    assert turn.member == b
    assert sent == [turn]
    assert turns.enqueue(f"chain2-{lane}", lane, exclude=[a]).member == ""
    members.leave(a)
    members.leave(b)


@pytest.fixture
def turns(client) -> Turns:
    woken: list = []
    turns = Turns(
        client,
        Members(client, heartbeat_s=60.0),
        lambda turn, delay: woken.append((turn, delay)),
    )
    turns.woken = woken  # type: ignore[attr-defined]
    return turns


def _lane(topic: str) -> Lane:
    return Lane("g", topic, 0)


def test_claim_takes_the_chain_with_the_lowest_virtual_time(turns):
    first = turns.enqueue("a", _lane("a"))
    claimed = turns.claim(first, "m1")
    turns.charge("a", seconds=1.0, weight=1)
    turns.finish(claimed)
    turns.enqueue("a", _lane("a"))
    wake = turns.enqueue("b", _lane("b"))
    assert turns.claim(wake, "m1").chain == "b"


def test_weight_divides_the_charge(turns):
    for chain, weight in (("heavy", 2), ("light", 1)):
        claimed = turns.claim(turns.enqueue(chain, _lane(chain)), "m")
        turns.charge(chain, seconds=1.0, weight=weight)
        turns.finish(claimed)
    wake = turns.enqueue("light", _lane("light"))
    turns.enqueue("heavy", _lane("heavy"))
    assert turns.claim(wake, "m").chain == "heavy"


def _virtual_time_after_a_charge_while_ready(turns, *, behind: float) -> float:
    """Queue chain "a" `behind` seconds of virtual time behind chain "b" (the
    latest claimed), charge it 1 s while it waits, and claim it."""
    turns.charge("a", seconds=5.0, weight=1)
    turns.charge("b", seconds=5.0 + behind, weight=1)
    turns.claim(turns.enqueue("b", _lane("b")), "m1")
    wake = turns.enqueue("a", _lane("a"))  # queued before its slice ended
    turns.charge("a", seconds=1.0, weight=1)  # the slice's last second
    return float(turns.claim(wake, "m2") and turns.client.hget(PASS_KEY, "a"))


def test_a_charge_made_after_the_turn_was_queued_counts_at_its_claim(turns):
    assert _virtual_time_after_a_charge_while_ready(turns, behind=0.0) == 6.0


def test_a_chain_queued_behind_the_virtual_time_still_banks_no_credit(turns):
    """Queued, it started at the current virtual time (10 s); its charge brings
    it to 6 s, still behind: it stays at 10 s, not 11 s."""
    assert _virtual_time_after_a_charge_while_ready(turns, behind=5.0) == 10.0


def test_a_free_lane_is_claimed_before_one_whose_holder_is_still_finishing(turns):
    """A turn queued early waits for its lane's release: a member with other
    work ready runs that instead of waiting, whatever the virtual times."""
    leases = LeaseManager(turns.client)
    turns.charge("b", seconds=1.0, weight=1)  # "a" is owed the next turn
    held = leases.acquire(_lane("a"), owner="m1", ttl_ms=5000)
    wake = turns.enqueue("a", _lane("a"), after_release=True, last_member="m1")
    turns.enqueue("b", _lane("b"))

    assert turns.claim(wake, "m2").chain == "b"
    leases.release(held)
    assert turns.claim(wake, "m3").chain == "a"


def test_a_turn_queued_early_is_claimed_when_nothing_else_is_ready(turns):
    leases = LeaseManager(turns.client)
    leases.acquire(_lane("a"), owner="m1", ttl_ms=5000)
    wake = turns.enqueue("a", _lane("a"), after_release=True, last_member="m1")
    assert turns.claim(wake, "m2").chain == "a"


def test_a_claimed_chain_is_not_claimed_twice(turns):
    wake = turns.enqueue("a", _lane("a"))
    assert turns.claim(wake, "m1").chain == "a"
    assert turns.claim(wake, "m2") is None


def test_claim_prefers_a_chain_the_member_did_not_run_last(turns):
    wake = turns.enqueue("a", _lane("a"), last_member="m1")
    turns.enqueue("b", _lane("b"), last_member="m2")
    assert turns.claim(wake, "m1").chain == "b"
    assert turns.claim(wake, "m1").chain == "a"  # nothing else: it may run again


def test_a_wake_up_before_a_delayed_chain_is_due_comes_back_later(turns):
    wake = turns.enqueue("a", _lane("a"), delay_s=30)
    turns.woken.clear()
    assert turns.claim(wake, "m1") is None
    [(again, delay)] = turns.woken
    assert again == wake
    assert 25 < delay <= 30


def test_a_running_turn_keeps_its_chain_busy_until_finished(turns):
    turn = turns.claim(turns.enqueue("a", _lane("a")), "m1")
    running = turns.queued("a")
    assert running.running
    assert not turns.is_stuck(running, after_s=0)
    turns.finish(turn)
    assert turns.queued("a") is None


def test_finish_leaves_the_next_queued_turn_alone(turns):
    first = turns.claim(turns.enqueue("a", _lane("a")), "m1")
    second = turns.enqueue("a", _lane("a"))
    turns.finish(first)
    assert turns.queued("a").id == second.id


def test_a_queued_turn_whose_wake_up_went_unanswered_is_stuck_once_overdue(client):
    """A restarted worker keeps its name, so "its member is gone" cannot be the
    only sign of a lost wake-up: an idle member takes a wake-up at once, so a
    turn overdue while a member sits idle was lost."""
    now = [1_000.0]
    members = Members(client, heartbeat_s=1.0, clock=lambda: now[0])
    member = f"m-{uuid.uuid4().hex[:8]}"
    members.beat(member, hostname="h", pid=1)
    members.mark_idle(member)
    lost: list = []
    turns = Turns(client, members, lambda t, d: lost.append(t), clock=lambda: now[0])
    turn = turns.enqueue("lost", _lane("lost"))
    assert turn.member == member  # the wake-up went to it... and was lost
    members.mark_idle(member)  # it restarted under the same name and is idle

    assert not turns.is_stuck(turns.queued("lost"), after_s=2.0)
    now[0] += 2.5
    members.beat(member, hostname="h", pid=2)
    assert turns.is_stuck(turns.queued("lost"), after_s=2.0)
    members.leave(member)


def test_a_queued_turn_waiting_while_every_member_is_busy_is_not_stuck(client):
    now = [1_000.0]
    members = Members(client, heartbeat_s=1.0, clock=lambda: now[0])
    member = f"m-{uuid.uuid4().hex[:8]}"
    members.beat(member, hostname="h", pid=1)  # alive, but busy (not idle)
    turns = Turns(client, members, lambda t, d: None, clock=lambda: now[0])
    turns.enqueue("waits", _lane("waits"))  # on the shared queue

    now[0] += 60
    members.beat(member, hostname="h", pid=1)
    assert not turns.is_stuck(turns.queued("waits"), after_s=2.0)
    members.leave(member)


class _CountingRedis(redis.Redis):
    """A real client that notes each command it sends (a script is one)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sent: list[str] = []

    def execute_command(self, *args, **options):
        self.sent.append(str(args[0]))
        return super().execute_command(*args, **options)


@pytest.fixture
def counted(client) -> _CountingRedis:
    return _CountingRedis(connection_pool=client.connection_pool)


def test_queueing_a_turn_picks_its_member_in_one_redis_call(counted):
    """A hand-off waits for this call: the member is picked and reserved, and
    the turn stored naming it, in one round trip."""
    members = Members(counted, heartbeat_s=60.0)
    member = f"m-{uuid.uuid4().hex[:8]}"
    members.beat(member, hostname="h", pid=1)
    members.mark_idle(member)
    sent: list = []
    turns = Turns(counted, members, lambda turn, delay: sent.append(turn))
    turns.enqueue("warm", _lane("warm"), exclude=[member])  # loads the script
    counted.sent.clear()

    turn = turns.enqueue("a", _lane("a"))

    assert counted.sent == ["EVALSHA"]
    assert turn.member == member
    assert sent[-1] == turn
    stored = turns.queued("a")
    assert (stored.id, stored.member, stored.lane) == (turn.id, member, turn.lane)
    assert not members.any_idle()  # reserved for this wake-up
    members.leave(member)


def test_a_member_claiming_a_turn_leaves_the_idle_set_in_the_same_call(counted):
    members = Members(counted, heartbeat_s=60.0)
    member = f"m-{uuid.uuid4().hex[:8]}"
    members.beat(member, hostname="h", pid=1)
    turns = Turns(counted, members, lambda turn, delay: None)
    turns.claim(turns.enqueue("warm", _lane("warm")), "someone else")
    wake = turns.enqueue("a", _lane("a"))
    members.mark_idle(member)
    counted.sent.clear()

    claimed = turns.claim(wake, member)

    assert counted.sent == ["EVALSHA"]
    assert claimed is not None
    assert claimed.chain == "a"
    assert not members.any_idle()
    members.leave(member)
