"""`.devstack/services.env`: what a second shell sources, and what settings read."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

from scheduler_site.devstack.dev_env import (
    dev_defaults,
    dev_secret_key,
    write_services_env,
)
from scheduler_site.devstack.services import SPECS

REPO_ROOT = Path(__file__).resolve().parents[1]
URL_VARS = [spec.env_var for spec in SPECS]
FILE_URLS = {
    "DATABASE_URL": "postgres://dev@127.0.0.1:1/from_file",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
}
SHOW_SETTINGS = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.DEBUG, s.DATABASES['default']['NAME'], s.REDIS_URL)"
)


def bare_env(**extra: str) -> dict[str, str]:
    """Return our environment without anything services.env could provide."""
    dropped = {*URL_VARS, "DEBUG", "SECRET_KEY", "DEVSTACK_DIR"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return {**env, "DJANGO_SETTINGS_MODULE": "scheduler_site.settings", **extra}


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sourcing_services_env_exports_each_value_exactly(tmp_path: Path) -> None:
    target = tmp_path / "dev" / "services.env"
    awkward = 'it\'s $HOME `and` "quotes" \\ too'
    write_services_env(target, {"REDIS_URL": "redis://x/0", "SECRET_KEY": awkward})
    show = "import os; print(os.environ['REDIS_URL']); print(os.environ['SECRET_KEY'])"
    result = subprocess.run(
        ["bash", "-c", f'source {target} && "{sys.executable}" -c "{show}"'],
        env=bare_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["redis://x/0", awkward]


def test_services_env_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "services.env"
    write_services_env(target, {"SECRET_KEY": "s"})
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_settings_take_service_urls_from_services_env_when_unset(
    tmp_path: Path,
) -> None:
    write_services_env(tmp_path / "services.env", FILE_URLS)
    env = bare_env(DEVSTACK_DIR=str(tmp_path), DEBUG="1")
    result = python(SHOW_SETTINGS, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "from_file", FILE_URLS["REDIS_URL"]]


def test_settings_never_take_debug_or_the_secret_key_from_services_env(
    tmp_path: Path,
) -> None:
    defaults = dev_defaults(tmp_path, environ={})
    write_services_env(tmp_path / "services.env", {**FILE_URLS, **defaults})
    env = bare_env(DEVSTACK_DIR=str(tmp_path))
    without_secret = python(SHOW_SETTINGS, env)
    assert without_secret.returncode != 0
    assert "SECRET_KEY must be set" in without_secret.stderr
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    with_secret = python(SHOW_SETTINGS, env)
    assert with_secret.returncode == 0, with_secret.stderr
    assert with_secret.stdout.split()[0] == "False", "DEBUG came from the file"


def test_dev_defaults_fill_only_what_the_user_did_not_set(tmp_path: Path) -> None:
    assert set(dev_defaults(tmp_path, environ={})) == {"DEBUG", "SECRET_KEY"}
    mine = {"DEBUG": "0", "SECRET_KEY": "my-own-secret"}
    assert dev_defaults(tmp_path, environ=mine) == {}


def test_the_dev_secret_key_is_kept_private_and_stable(tmp_path: Path) -> None:
    key = dev_secret_key(tmp_path)
    assert dev_secret_key(tmp_path) == key
    [stored] = tmp_path.iterdir()
    assert stored.read_text().strip() == key
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert key != dev_secret_key(tmp_path / "elsewhere")


def test_the_dev_secret_key_is_refused_when_debug_is_off(tmp_path: Path) -> None:
    env = bare_env(SECRET_KEY=dev_secret_key(tmp_path), **FILE_URLS)
    result = python(SHOW_SETTINGS, env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
