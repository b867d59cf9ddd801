"""Who may read /metrics: Prometheus with the configured bearer token, or a
signed-in user who may view the rotation (operators; the dashboard's rule).

The figures name topics, groups and workers and show the load, so they are not
public. A token suits a scraper (no session, no CSRF); it is compared in
constant time. With METRICS_TOKEN unset no token is accepted, only sessions.
"""

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from tasks_app.middleware import body_error
from tasks_app.roles import VIEW_ROTATION


def metrics_denial(request: HttpRequest) -> HttpResponse | None:
    """Return the answer refusing the request, or None when it may read."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        if _token_matches(given.strip()):
            return None
        return _unauthorized("The bearer token is not this server's METRICS_TOKEN.")
    if not request.user.is_authenticated:
        return _unauthorized(
            "Send `Authorization: Bearer <METRICS_TOKEN>`, or sign in as an "
            "operator (the admin's login page)."
        )
    if not request.user.has_perm(VIEW_ROTATION):
        return body_error(
            f"Reading /metrics needs the permission {VIEW_ROTATION} (operators).",
            code="permission_denied",
            status=403,
        )
    return None


def _token_matches(given: str) -> bool:
    expected = settings.METRICS_TOKEN
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _unauthorized(detail: str) -> HttpResponse:
    response = body_error(detail, code="not_authenticated", status=401)
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response
