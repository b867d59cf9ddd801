"""Shared fixtures: users, authenticated API clients, unique topic names."""

import uuid
from collections.abc import Callable, Iterator

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from rotation.store import LaneStore
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


@pytest.fixture
def user(db):
    """Return a regular user."""
    return UserFactory()


@pytest.fixture
def api_client(user) -> APIClient:
    """Return an API client authenticated with the user's token."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def anon_client() -> APIClient:
    """Return an API client with no credentials."""
    return APIClient()


@pytest.fixture
def topic_name() -> str:
    """Return a topic name no other test uses (the broker never forgets topics)."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def slice_harness() -> Iterator[Callable[..., Harness]]:
    """Build in-process slice runners (tests/lane_harness.py); close them after."""
    built: list[Harness] = []

    def build(store: LaneStore | None = None, *, member: str = "m1") -> Harness:
        built.append(harness(store, member=member))
        return built[-1]

    yield build
    for made in built:
        made.close()
