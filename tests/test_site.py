"""Site wiring: offline API docs and dashboard, static files via WhiteNoise, the
database-down 503."""

import re

import pytest
from django.core import checks
from django.core.management import call_command
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from rest_framework.test import APIClient

SIDECAR_PREFIX = "/static/drf_spectacular_sidecar/"


def _docs_assets(client: APIClient) -> list[str]:
    """Return the src/href of every asset the Swagger UI page loads."""
    html = client.get("/api/docs/").content.decode()
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_the_docs_page_loads_swagger_ui_from_our_own_static_files(anon_client, db):
    assets = _docs_assets(anon_client)

    assert len(assets) >= 4, "favicon, stylesheet and two scripts"
    assert all(asset.startswith(SIDECAR_PREFIX) for asset in assets), assets


@pytest.fixture
def collected(db, settings, tmp_path) -> None:
    """Run collectstatic into a fresh STATIC_ROOT, as a deploy does."""
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", "--noinput", verbosity=0)


def _served_gzipped(client: Client, assets: list[str]) -> None:
    for asset in assets:
        response = client.get(asset, HTTP_ACCEPT_ENCODING="gzip")
        assert response.status_code == 200, asset
        if asset.endswith((".js", ".css")):
            assert response["Content-Encoding"] == "gzip", asset


def test_whitenoise_serves_every_docs_asset_after_collectstatic(collected):
    client = APIClient()  # a new client loads WhiteNoise with the new STATIC_ROOT

    _served_gzipped(client, _docs_assets(client))


def test_whitenoise_serves_the_dashboards_own_assets_after_collectstatic(
    collected, operator
):
    client = Client()
    client.force_login(operator)
    page = client.get("/dashboard/").content.decode()
    assets = re.findall(r'(?:src|href)="(/static/tasks_app/[^"]+)"', page)

    assert sorted(assets) == [
        "/static/tasks_app/dashboard/dashboard.css",
        "/static/tasks_app/dashboard/dashboard.js",
    ]
    _served_gzipped(client, assets)


def test_in_debug_whitenoise_serves_docs_assets_without_collectstatic(db, settings):
    settings.DEBUG = True  # as `make dev` runs
    client = APIClient()

    for asset in _docs_assets(client):
        assert client.get(asset).status_code == 200, asset


def test_drf_has_no_global_page_size_to_warn_about():
    found = {message.id for message in checks.run_checks()}

    assert "rest_framework.W001" not in found


def test_test_users_hash_passwords_with_md5_for_speed(submitter):
    assert submitter.password.startswith("md5$")
    assert submitter.check_password("pw-for-tests-1")


def _failing_view(error: type[Exception]):
    def view(request: HttpRequest) -> HttpResponse:
        raise error("as psycopg would say it")

    return view


urlpatterns = [
    path("operational/", _failing_view(OperationalError)),
    path("interface/", _failing_view(InterfaceError)),
]


@pytest.mark.urls("tests.test_site")
@pytest.mark.parametrize("url", ["/operational/", "/interface/"])
def test_a_plain_django_view_answers_503_naming_postgresql_when_it_is_lost(
    anon_client, url
):
    response = anon_client.get(url)

    assert response.status_code == 503
    assert response.json()["service"] == "postgresql"
    assert response.json()["detail"].startswith("PostgreSQL is unreachable")
    assert response["Retry-After"] == "5"
