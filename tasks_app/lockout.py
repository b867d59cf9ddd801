"""Sign-in lockout (django-axes): the client's address and the lockout answer.

Axes counts failed sign-ins per (username, address) on every route that calls
Django's `authenticate()`: the admin login, the browsable API's login and
`POST /api/auth/token/`. Past AXES_FAILURE_LIMIT it refuses that pair for
AXES_COOLOFF_TIME, and each attempt during the lockout starts the wait again.
https://django-axes.readthedocs.io/en/latest/4_configuration.html
"""

from typing import Any

from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

from tasks_app.errors import SchedulerError

LOCKOUT_STATUS = 429
API_PREFIX = "/api/"


class LoginLockedOut(SchedulerError):
    """Too many failed sign-ins for this username from this address."""

    status_code = LOCKOUT_STATUS
    code = "locked_out"


def lockout_wait_s() -> int:
    """Return how long a locked-out pair waits, in seconds (the whole cool-off:
    the attempt being answered has just started it again)."""
    cool_off = get_cool_off()
    return int(cool_off.total_seconds()) if cool_off else 0


def lockout_message() -> str:
    """Say what happened and when to try again, in words a person can act on."""
    minutes = max(1, round(lockout_wait_s() / 60))
    return (
        "Too many failed sign-ins for this username from your address. Try again "
        f"in {minutes} minutes; each attempt before then starts the wait again. "
        "An administrator can lift the lock in the admin (Axes: access attempts)."
    )


def lockout_error() -> LoginLockedOut:
    """Build the API's error for a locked-out sign-in (see api/exceptions.py)."""
    return LoginLockedOut(lockout_message(), retry_after_s=lockout_wait_s())


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """Answer a locked-out sign-in: the API's JSON under /api/, else a page.

    AXES_LOCKOUT_CALLABLE; AxesMiddleware calls it for Django's login views.
    """
    wait_s = lockout_wait_s()
    if request.path.startswith(API_PREFIX):
        error = lockout_error()
        response: HttpResponse = JsonResponse(
            {"detail": error.message, "code": error.code}, status=LOCKOUT_STATUS
        )
    else:
        response = TemplateResponse(
            request,
            "tasks_app/locked_out.html",
            {**admin.site.each_context(request), "message": lockout_message()},
            status=LOCKOUT_STATUS,
        ).render()
    response["Retry-After"] = str(wait_s)
    return response


def client_ip(request: HttpRequest) -> str | None:
    """Return the address sign-ins are counted by (AXES_CLIENT_IP_CALLABLE).

    REMOTE_ADDR, unless CLIENT_IP_HEADER names a header that the TLS proxy in
    front sets: then its right-most address, the one the proxy saw connect.
    Never trust such a header without a proxy that sets it: clients could
    pick a new address for every attempt.
    """
    header = settings.CLIENT_IP_HEADER
    if header:
        key = "HTTP_" + header.upper().replace("-", "_")
        forwarded = request.META.get(key, "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR")
