"""Error pages for requests no view answered (unknown URL, refused host, crash).

Django renders these as HTML; outside the admin they answer in the API's JSON
shape instead, so an API client never has to parse a page. Used only when DEBUG
is off (Django shows its technical pages otherwise).
"""

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from tasks_app.middleware import body_error

ADMIN_PREFIX = "/admin/"


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Answer 404 for a URL no route matches."""
    if request.path.startswith(ADMIN_PREFIX):
        return defaults.page_not_found(request, exception)
    return body_error(
        f"Nothing is at {request.path[:200]}. See /api/ for the routes and "
        "/api/docs/ for what each takes.",
        code="not_found",
        status=404,
    )


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Answer 400 for a request Django refused before any view (e.g. its host)."""
    if request.path.startswith(ADMIN_PREFIX):
        return defaults.bad_request(request, exception)
    return body_error(
        "The request was refused as malformed (for example an unknown Host "
        "header, or too many form fields).",
        code="bad_request",
        status=400,
    )


def server_error(request: HttpRequest) -> HttpResponse:
    """Answer 500 when a view failed; the error is in the server's log."""
    if request.path.startswith(ADMIN_PREFIX):
        return defaults.server_error(request)
    return body_error(
        "The server failed to answer this request; the error is in its log. "
        "Retry; if it persists, report it with the time of the request.",
        code="server_error",
        status=500,
    )
