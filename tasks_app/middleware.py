"""Site-wide request guards: bodies the app cannot read answer 413 or 415 before
any view reads them, and a lost database answers 503 naming PostgreSQL."""

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from tasks_app.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

DATABASE_DOWN = "the request was not stored"


# JSON must be UTF-8 (RFC 8259, section 8.1); forms from the browsable API and
# the admin are UTF-8 too. Other charsets are refused rather than guessed at:
# Python's codec registry also holds rot13, zlib and the like.
ACCEPTED_CHARSETS = frozenset({"utf-8", "utf8"})


class RequestBodyCheckMiddleware:
    """Refuse a body over DATA_UPLOAD_MAX_MEMORY_SIZE (413) or in a charset other
    than UTF-8 (415), answering in the API's JSON shape on every route.

    Django would raise RequestDataTooBig (an HTML 400) or a codec error (a 500)
    only once a view reads the body; checking the headers first answers every
    route the same way, before anything is read.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        size = _content_length(request)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and size > limit:
            return body_error(
                f"The request body is {size} bytes, over the limit of {limit} bytes "
                "(MAX_REQUEST_BYTES). Send fewer tasks per request, or store large "
                "payloads elsewhere and send a reference.",
                code="request_too_large",
                status=413,
            )
        charset = (request.content_params or {}).get("charset")
        if size and charset is not None and charset.lower() not in ACCEPTED_CHARSETS:
            return body_error(
                f"The body's charset {charset[:40]!r} is not supported; send it as "
                "UTF-8 (charset=utf-8, or no charset).",
                code="unsupported_charset",
                status=415,
            )
        return self.get_response(request)


def _content_length(request: HttpRequest) -> int:
    """Read Content-Length as Django does: missing or malformed means 0."""
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def body_error(detail: str, *, code: str, status: int) -> JsonResponse:
    """Build an error answer in the API's shape outside DRF (detail and code)."""
    return JsonResponse({"detail": detail, "code": code}, status=status)


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
            down = ServiceUnavailable.down("postgresql", so=DATABASE_DOWN)
            return JsonResponse(
                down.body(),
                status=down.status_code,
                headers={"Retry-After": str(down.retry_after_s)},
            )
        return None
