"""`ensure_admin`: one superuser, one token, a 0600 credentials file, idempotent."""

import json
import stat

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from tasks_app.services.users import admin_credentials_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def credentials_path(tmp_path, monkeypatch):
    """Return where the credentials go, with ADMIN_PASSWORD unset."""
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    return tmp_path / ".devstack" / "credentials.json"


def _read(path):
    return json.loads(path.read_text())


def test_creates_superuser_token_and_private_credentials_file(credentials_path):
    call_command("ensure_admin", credentials=credentials_path)
    stored = _read(credentials_path)
    user = get_user_model().objects.get(username="admin")
    assert user.is_superuser
    assert user.is_staff
    assert user.check_password(stored["password"])
    assert stored["username"] == "admin"
    assert stored["token"] == Token.objects.get(user=user).key
    assert stat.S_IMODE(credentials_path.stat().st_mode) == 0o600


def test_second_run_keeps_the_same_password_and_token(credentials_path):
    call_command("ensure_admin", credentials=credentials_path)
    first = _read(credentials_path)
    call_command("ensure_admin", credentials=credentials_path)
    assert _read(credentials_path) == first
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


def test_admin_password_from_the_environment_wins(credentials_path, monkeypatch):
    call_command("ensure_admin", credentials=credentials_path)
    monkeypatch.setenv("ADMIN_PASSWORD", "a-long-chosen-passphrase")
    call_command("ensure_admin", credentials=credentials_path)
    assert _read(credentials_path)["password"] == "a-long-chosen-passphrase"
    user = get_user_model().objects.get(username="admin")
    assert user.check_password("a-long-chosen-passphrase")


def test_stale_stored_password_is_replaced_by_a_working_one(credentials_path):
    call_command("ensure_admin", credentials=credentials_path)
    stale = _read(credentials_path)
    user = get_user_model().objects.get(username="admin")
    user.set_password("changed-elsewhere-123")
    user.save()
    call_command("ensure_admin", credentials=credentials_path)
    fresh = _read(credentials_path)
    assert fresh["password"] != stale["password"]
    assert fresh["token"] == stale["token"]
    user.refresh_from_db()
    assert user.check_password(fresh["password"])


def test_existing_password_is_kept_when_there_is_no_file(monkeypatch):
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    get_user_model().objects.create_superuser("boss", password="known-pass-4321")
    credentials = admin_credentials_ensure(username="boss", password=None, path=None)
    assert credentials.password is None
    assert (
        get_user_model().objects.get(username="boss").check_password("known-pass-4321")
    )


def test_weak_admin_password_is_refused_with_the_reason(credentials_path, monkeypatch):
    monkeypatch.setenv("ADMIN_PASSWORD", "admin")
    with pytest.raises(CommandError, match="ADMIN_PASSWORD is too weak"):
        call_command("ensure_admin", credentials=credentials_path)
    assert not credentials_path.exists()


def test_without_a_file_the_token_and_only_a_generated_password_are_printed(
    monkeypatch, capsys
):
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    call_command("ensure_admin", username="ops")
    out = capsys.readouterr().out
    token = Token.objects.get(user__username="ops").key
    assert f"API token: {token}" in out
    assert "Generated password: " in out
    monkeypatch.setenv("ADMIN_PASSWORD", "a-long-chosen-passphrase")
    call_command("ensure_admin", username="ops")
    assert "a-long-chosen-passphrase" not in capsys.readouterr().out
