"""Shared fixtures: users in each role, authenticated API clients, topic names,
and a one-worker Celery cluster for end-to-end modules."""

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from rotation.store import LaneStore
from tasks_app.redis_client import redis_client
from tasks_app.roles import Role
from tests.cluster import beat_entries_restore, running_cluster, worker_database_url
from tests.factories import UserFactory
from tests.lane_harness import Harness, harness


def pytest_configure(config: pytest.Config) -> None:
    """Silence WhiteNoise's "No directory at" STATIC_ROOT warning.

    Tests never run collectstatic, so STATIC_ROOT is absent and WhiteNoise says so
    for every test client; tests that need collected files collect them into a
    temporary STATIC_ROOT.
    """
    config.addinivalue_line("filterwarnings", "ignore:No directory at:UserWarning")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Hash test passwords with MD5: PBKDF2's deliberate slowness buys tests nothing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _beat_entries(request):
    """Before each transactional test, put back the beat entries the flush after
    the last one deleted (tests/cluster.py, beat_entries_restore)."""
    marker = request.node.get_closest_marker("django_db")
    if marker is not None and marker.kwargs.get("transaction"):
        request.getfixturevalue("transactional_db")
        beat_entries_restore()


@pytest.fixture
def submitter(db):
    """Return a user in the submitters group: submits tasks, sees their own."""
    return UserFactory(role=Role.SUBMITTER)


@pytest.fixture
def operator(db):
    """Return a staff user in the operators group: manages everything."""
    return UserFactory(role=Role.OPERATOR)


@pytest.fixture
def nobody(db):
    """Return an active user in no group: signed in, allowed nothing."""
    return UserFactory()


@pytest.fixture
def client_for():
    """Return a function that builds an API client using a user's token."""

    def build(user) -> APIClient:
        client = APIClient()
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return build


@pytest.fixture
def submitter_client(client_for, submitter) -> APIClient:
    """Return an API client authenticated with the submitter's token."""
    return client_for(submitter)


@pytest.fixture
def operator_client(client_for, operator) -> APIClient:
    """Return an API client authenticated with the operator's token."""
    return client_for(operator)


@pytest.fixture
def anon_client() -> APIClient:
    """Return an API client with no credentials."""
    return APIClient()


@pytest.fixture
def redis_at(settings):
    """Return a function that points REDIS_URL at another URL for this test."""

    def switch(url: str) -> None:
        settings.REDIS_URL = url
        redis_client.cache_clear()  # the next use reads REDIS_URL anew

    yield switch
    redis_client.cache_clear()  # `settings` then restores the URL


@pytest.fixture
def topic_name() -> str:
    """Return a topic name no other test uses (the broker never forgets topics)."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def slice_harness() -> Iterator[Callable[..., Harness]]:
    """Build in-process slice runners (tests/lane_harness.py); close them after."""
    built: list[Harness] = []

    def build(
        store: LaneStore | None = None, *, member: str = "m1", fresh: bool = True
    ) -> Harness:
        built.append(harness(store, member=member, fresh=fresh))
        return built[-1]

    yield build
    for made in built:
        made.close()


@pytest.fixture(scope="module")
def worker_env() -> dict[str, str]:
    """Return what a test module adds to its cluster's environment (override it)."""
    return {}


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, tmp_path_factory, worker_env):
    """One rotation worker, a publisher worker and beat, for the test module."""
    with django_db_blocker.unblock():
        env = {**os.environ, "DATABASE_URL": worker_database_url(), **worker_env}
    with running_cluster(env, tmp_path_factory.mktemp("cluster"), ["w1"]) as cluster:
        yield cluster
