"""Sign-ins are rate-limited per username and address (django-axes), on the admin
login, the browsable API's login and the token endpoint; a lockout says when
to retry."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

PASSWORD = "pw-for-tests-1"
WRONG = "not-the-password"
TOKEN_URL = "/api/auth/token/"
LOCKOUT_S = 15 * 60

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _login_limits(settings):
    """Pin the limits these tests count against (the shipped defaults)."""
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(seconds=LOCKOUT_S)


def _admin_login(client: Client, username: str, password: str, address="10.0.0.1"):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


def _api_login(client: Client, username: str, password: str, address="10.0.0.1"):
    return client.post(
        "/api/auth/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


def _token(username: str, password: str, address="10.0.0.1"):
    return APIClient().post(
        TOKEN_URL,
        {"username": username, "password": password},
        format="json",
        REMOTE_ADDR=address,
    )


def test_the_token_endpoint_answers_the_users_token(submitter):
    response = _token(submitter.username, PASSWORD)

    assert response.status_code == 200, response.data
    assert response.data == {"token": Token.objects.get(user=submitter).key}


def test_a_wrong_password_at_the_token_endpoint_is_a_401_in_the_api_shape(submitter):
    response = _token(submitter.username, WRONG)

    assert response.status_code == 401
    assert response.data["code"] == "authentication_failed"
    assert "Unable to sign in" in response.data["detail"]
    assert response["WWW-Authenticate"] == "Token"


def test_a_missing_password_at_the_token_endpoint_is_a_400_naming_it(submitter):
    response = APIClient().post(
        TOKEN_URL, {"username": submitter.username}, format="json"
    )

    assert response.status_code == 400
    assert response.data["field"] == "password"


def test_the_token_endpoint_locks_out_then_refuses_even_the_right_password(submitter):
    failures = [_token(submitter.username, WRONG).status_code for _ in range(4)]
    fifth = _token(submitter.username, WRONG)
    right = _token(submitter.username, PASSWORD)

    assert failures == [401] * 4
    for response in (fifth, right):
        assert response.status_code == 429
        assert response.data["code"] == "locked_out"
        assert "Try again in 15 minutes" in response.data["detail"]
        assert response["Retry-After"] == str(LOCKOUT_S)
    assert "token" not in right.data


def test_the_lockout_is_per_username_and_address(submitter):
    other = type(submitter).objects.create_user("other", password=PASSWORD)
    for _ in range(5):
        _token(submitter.username, WRONG)

    assert _token(submitter.username, PASSWORD, address="10.0.0.2").status_code == 200
    assert _token(other.username, PASSWORD).status_code == 200
    assert _token(submitter.username, PASSWORD).status_code == 429


def test_the_lockout_ends_after_the_cool_off(submitter):
    for _ in range(5):
        _token(submitter.username, WRONG)
    past = AccessAttempt.objects.get().attempt_time - timedelta(seconds=LOCKOUT_S + 1)
    AccessAttempt.objects.update(attempt_time=past)

    assert _token(submitter.username, PASSWORD).status_code == 200


def test_a_successful_sign_in_forgets_earlier_failures(submitter):
    for _ in range(4):
        _token(submitter.username, WRONG)
    _token(submitter.username, PASSWORD)

    answers = [_token(submitter.username, WRONG).status_code for _ in range(4)]

    assert answers == [401] * 4


def test_the_admin_login_locks_out_with_a_page_saying_when_to_retry(operator):
    client = Client()
    failures = [
        _admin_login(client, operator.username, WRONG).status_code for _ in range(4)
    ]
    fifth = _admin_login(client, operator.username, WRONG)
    right = _admin_login(client, operator.username, PASSWORD)

    assert failures == [200] * 4, "the form again, with its error"
    for response in (fifth, right):
        assert response.status_code == 429
        assert response["Content-Type"].startswith("text/html")
        assert b"Try again in 15 minutes" in response.content
        assert response["Retry-After"] == str(LOCKOUT_S)
    assert "_auth_user_id" not in client.session


def test_the_api_login_locks_out_with_a_json_answer(operator):
    client = Client()
    for _ in range(5):
        _api_login(client, operator.username, WRONG)

    right = _api_login(client, operator.username, PASSWORD)

    assert right.status_code == 429
    assert right.json()["code"] == "locked_out"
    assert "Try again in 15 minutes" in right.json()["detail"]
    assert right["Retry-After"] == str(LOCKOUT_S)
    assert "_auth_user_id" not in client.session


def test_failures_count_across_the_three_sign_in_routes(operator):
    client = Client()
    _admin_login(client, operator.username, WRONG)
    _admin_login(client, operator.username, WRONG)
    _api_login(client, operator.username, WRONG)
    _api_login(client, operator.username, WRONG)
    _token(operator.username, WRONG)

    assert _token(operator.username, PASSWORD).status_code == 429


def test_behind_a_proxy_the_configured_header_names_the_address(settings, submitter):
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    for _ in range(5):
        APIClient().post(
            TOKEN_URL,
            {"username": submitter.username, "password": WRONG},
            format="json",
            HTTP_X_FORWARDED_FOR="203.0.113.7",
        )

    attempt = AccessAttempt.objects.get()
    locked = APIClient().post(
        TOKEN_URL,
        {"username": submitter.username, "password": PASSWORD},
        format="json",
        HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.7",
    )

    assert attempt.ip_address == "203.0.113.7"
    assert locked.status_code == 429, "the right-most address is the client's"
