"""The topic rate limiter (rotation/rate_limit.py) against a real Redis."""

import time
import uuid

import pytest
import redis

from rotation.rate_limit import RateLimit, RateLimiter, rate_limit_for
from rotation.store import EndReason
from tasks_app.models import Slice
from tests.cluster import redis_database
from tests.lane_harness import published_topic


@pytest.fixture
def limiter() -> RateLimiter:
    """A limiter on a private Redis database."""
    client: redis.Redis = redis_database(13)
    client.flushdb()
    return RateLimiter(client)


@pytest.fixture
def topic() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def test_a_full_bucket_grants_the_burst_then_nothing(limiter, topic):
    limit = RateLimit(per_s=1.0, burst=5)
    first = limiter.take(topic, limit, wanted=3)
    second = limiter.take(topic, limit, wanted=10)
    assert (first.granted, first.wait_s) == (3, 0.0)
    assert second.granted == 2
    # Empty now: the next 5 tokens (a full burst) return in about 5 s.
    assert 4.0 < second.wait_s <= 5.0


def test_tokens_return_at_the_rate(limiter, topic):
    limit = RateLimit(per_s=20.0, burst=2)
    assert limiter.take(topic, limit, wanted=2).granted == 2
    started = time.monotonic()
    granted = 0
    while time.monotonic() - started < 1.0:
        granted += limiter.take(topic, limit, wanted=1).granted
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    # At most the rate over the time waited (+1 for the token due at the end).
    assert granted <= 20.0 * elapsed + 1
    assert granted >= 10  # generous: the machine is shared


def test_an_empty_bucket_says_when_the_wanted_tokens_return(limiter, topic):
    limit = RateLimit(per_s=10.0, burst=4)
    limiter.take(topic, limit, wanted=4)
    grant = limiter.take(topic, limit, wanted=2)
    assert grant.granted == 0
    assert 0.1 < grant.wait_s <= 0.2  # two tokens at 10/s
    time.sleep(grant.wait_s)
    assert limiter.take(topic, limit, wanted=2).granted == 2


def test_tokens_given_back_can_be_taken_again_up_to_the_burst(limiter, topic):
    limit = RateLimit(per_s=0.1, burst=3)
    limiter.take(topic, limit, wanted=3)
    limiter.give_back(topic, limit, 2)
    assert limiter.take(topic, limit, wanted=3).granted == 2
    limiter.give_back(topic, limit, 10)
    assert limiter.take(topic, limit, wanted=10).granted == 3


def test_topics_have_buckets_of_their_own(limiter, topic):
    limit = RateLimit(per_s=0.1, burst=1)
    assert limiter.take(topic, limit, wanted=1).granted == 1
    assert limiter.take(topic + "-other", limit, wanted=1).granted == 1
    assert limiter.take(topic, limit, wanted=1).granted == 0


def test_a_lowered_burst_applies_at_once(limiter, topic):
    limiter.take(topic, RateLimit(per_s=0.1, burst=10), wanted=1)
    assert limiter.take(topic, RateLimit(per_s=0.1, burst=2), wanted=10).granted == 2


def test_no_rate_means_no_limit_and_the_burst_defaults_to_one_second():
    assert rate_limit_for(None, 7) is None
    assert rate_limit_for(50.0, None) == RateLimit(per_s=50.0, burst=50)
    assert rate_limit_for(0.2, None) == RateLimit(per_s=0.2, burst=1)
    assert rate_limit_for(2.5, 10) == RateLimit(per_s=2.5, burst=10)


@pytest.mark.django_db(transaction=True)
def test_a_limited_lane_yields_its_slice_and_its_next_turn_waits_for_tokens(
    slice_harness,
):
    lane, _ = published_topic(30, rate_limit=10.0, rate_burst=5)
    harness = slice_harness()
    record = harness.run_turn(lane)
    assert record.end_reason == EndReason.RATE_LIMITED
    assert record.messages == 5
    [next_turn] = harness.sent
    # Five tokens return at 10/s in 0.5 s: the turn is not due before then.
    assert 0.1 < next_turn.not_before - time.time() <= 0.5
    assert Slice.objects.get(topic__name=lane.topic).end_reason == "rate_limited"


@pytest.mark.django_db(transaction=True)
def test_a_limited_lane_runs_no_more_than_burst_plus_rate_times_time(slice_harness):
    lane, _ = published_topic(200, rate_limit=20.0, rate_burst=5)
    harness = slice_harness()
    started = time.monotonic()
    ran = 0
    while time.monotonic() - started < 2.0:
        ran += harness.run_turn(lane).messages  # turn after turn, never waiting
    elapsed = time.monotonic() - started
    assert ran <= 5 + 20.0 * elapsed + 1
    assert ran >= 5 + 10  # generous: tokens did return while it ran


@pytest.mark.django_db(transaction=True)
def test_an_unlimited_lane_is_not_held_back(slice_harness):
    lane, _ = published_topic(30)
    record = slice_harness().run_turn(lane)
    assert (record.end_reason, record.messages) == (EndReason.DRAINED, 30)
