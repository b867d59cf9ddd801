"""Settings from the environment: `check --deploy` is clean under the environment
that docker-compose.yml documents, HTTPS is the default once DEBUG is off, and a
malformed value stops start-up naming its variable."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.test import Client

from scheduler_site.devstack.postgres import SERVER_SETTINGS

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
# ${NAME}, ${NAME:-default} and ${NAME:?message}, as Compose interpolates them.
_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")
# What an operator puts in .env before `docker compose up` (docs/deployment.md).
DOT_ENV = {
    "SECRET_KEY": secrets.token_urlsafe(50),
    "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
}
CHECK_TIMEOUT_S = 120
# Service URLs that settings accept without connecting to anything.
PRODUCTION_URLS = {
    "DATABASE_URL": "postgres://u@localhost/db",
    "REDIS_URL": "redis://localhost:6379/0",
    "KAFKA_BOOTSTRAP_SERVERS": "localhost:9092",
}


def _interpolate(value: str, dot_env: dict[str, str]) -> str:
    def one(match: re.Match) -> str:
        name, kind, default = match.groups()
        if name in dot_env:
            return dot_env[name]
        if kind == "?":
            raise AssertionError(f"compose requires {name}: {default}")
        return default or ""

    return _VARIABLE.sub(one, value)


def compose_app_environment() -> dict[str, str]:
    """Return the app containers' environment as Compose would build it."""
    environment = yaml.safe_load(COMPOSE.read_text())["x-app"]["environment"]
    return {
        name: _interpolate(str(value), DOT_ENV) for name, value in environment.items()
    }


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env={**base, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
        check=False,
    )


def test_check_deploy_is_clean_under_the_documented_production_environment():
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING", env=compose_app_environment()
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("SECURE_SSL_REDIRECT", "True"),
        ("SESSION_COOKIE_SECURE", "True"),
        ("CSRF_COOKIE_SECURE", "True"),
        ("SECURE_HSTS_SECONDS", "31536000"),
        ("SECURE_REDIRECT_EXEMPT", "['^healthz$', '^metrics$']"),
    ],
)
def test_with_debug_off_https_is_on_unless_the_environment_says_otherwise(
    setting, expected
):
    env = {"SECRET_KEY": DOT_ENV["SECRET_KEY"], **PRODUCTION_URLS}

    result = _manage("diffsettings", "--all", env=env)

    assert f"{setting} = {expected}" in result.stdout, result.stderr


def test_the_proxy_header_setting_names_the_header_and_https():
    env = {**compose_app_environment(), "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"}

    result = _manage("diffsettings", "--all", env=env)

    assert "SECURE_PROXY_SSL_HEADER = ('HTTP_X_FORWARDED_PROTO', 'https')" in (
        result.stdout
    ), result.stderr


def test_a_short_metrics_token_stops_start_up_saying_how_to_make_one():
    env = {"SECRET_KEY": DOT_ENV["SECRET_KEY"], **PRODUCTION_URLS}

    result = _manage("diffsettings", env={**env, "METRICS_TOKEN": "secret"})

    assert result.returncode != 0
    assert "METRICS_TOKEN must be at least 32 characters" in result.stderr
    assert "secrets.token_urlsafe" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "SCHEDULER_SLICE_MS",
            "abc",
            "SCHEDULER_SLICE_MS must be an integer, got 'abc'",
        ),
        ("LOGIN_FAILURE_LIMIT", "", "LOGIN_FAILURE_LIMIT must be an integer, got ''"),
        (
            "SCHEDULER_HEARTBEAT_S",
            "2s",
            "SCHEDULER_HEARTBEAT_S must be a number, got '2s'",
        ),
        (
            "SCHEDULER_WATCHDOG_S",
            "0.5",
            "SCHEDULER_WATCHDOG_S must be whole seconds, at least 1, got 0.5",
        ),
    ],
)
def test_a_malformed_number_stops_start_up_naming_the_variable(name, value, message):
    env = {"SECRET_KEY": DOT_ENV["SECRET_KEY"], **PRODUCTION_URLS, name: value}

    result = _manage("diffsettings", env=env)

    assert result.returncode != 0
    assert message in result.stderr


def test_numbers_and_lists_read_as_written():
    env = {
        "SECRET_KEY": "$" + DOT_ENV["SECRET_KEY"],  # taken as is, not as a $NAME
        **PRODUCTION_URLS,
        "SCHEDULER_PUBLISH_INTERVAL": "3e0",
        "ALLOWED_HOSTS": " a.example , ,b.example,",
    }

    result = _manage("diffsettings", env=env)

    assert "SCHEDULER_PUBLISH_INTERVAL_S = 3" in result.stdout, result.stderr
    assert "ALLOWED_HOSTS = ['a.example', 'b.example']" in result.stdout


def test_a_missing_service_url_names_it_and_the_dev_stack(tmp_path):
    env = {**PRODUCTION_URLS, "DEVSTACK_DIR": str(tmp_path), "DEBUG": "1"}
    del env["REDIS_URL"]

    result = _manage("diffsettings", env=env)

    assert result.returncode != 0
    assert "REDIS_URL is not set. Set it, or start the embedded stack with " in (
        result.stderr
    )


@pytest.mark.django_db
def test_plain_http_is_redirected_to_https_except_the_health_check(settings):
    settings.SECURE_SSL_REDIRECT = True
    client = Client()  # built after the change: middleware reads settings once

    api = client.get("/api/tasks/")
    health = client.get("/healthz")
    secure = client.get("/api/tasks/", secure=True)

    assert (api.status_code, api["Location"]) == (301, "https://testserver/api/tasks/")
    assert health.status_code in (200, 503), "answered, not redirected"
    assert secure.status_code == 401
    assert secure["Strict-Transport-Security"].startswith("max-age=")


def test_compose_postgres_runs_with_the_embedded_servers_settings():
    postgres = yaml.safe_load(COMPOSE.read_text())["services"]["postgres"]

    command = postgres["command"]
    assert command[0] == "postgres"
    given = [command[i + 1] for i, arg in enumerate(command) if arg == "-c"]
    assert given == list(SERVER_SETTINGS)
