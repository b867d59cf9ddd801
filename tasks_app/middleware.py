"""Answer 503 naming PostgreSQL when the database cannot be reached."""

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

DATABASE_DOWN_MESSAGE = (
    "PostgreSQL is unreachable, so the request was not stored. Retry shortly; "
    "if it persists, check the database server and DATABASE_URL."
)


class DatabaseUnavailableMiddleware:
    """Turn a lost database connection anywhere in a request into a clear 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponse | None:
        # InterfaceError: the connection itself is unusable (closed under us).
        if isinstance(exception, OperationalError | InterfaceError):
            logger.error("PostgreSQL unreachable on %s: %s", request.path, exception)
            return database_unavailable_response()
        return None


def database_unavailable_response() -> JsonResponse:
    """Build the 503 answer that names the database and what to do."""
    return JsonResponse(
        {
            "detail": DATABASE_DOWN_MESSAGE,
            "code": "service_unavailable",
            "service": "postgresql",
        },
        status=503,
        headers={"Retry-After": "5"},
    )
