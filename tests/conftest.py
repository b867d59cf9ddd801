"""Shared fixtures: users, authenticated API clients, unique topic names."""

import uuid

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory


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
