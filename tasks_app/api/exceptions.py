"""Map every failure to one JSON answer a person can act on (DRF EXCEPTION_HANDLER)."""

import logging
from collections.abc import Iterator
from typing import Any

import redis
from django.db import DataError, IntegrityError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from tasks_app.errors import SchedulerError, ServiceUnavailable
from tasks_app.middleware import DATABASE_DOWN

logger = logging.getLogger(__name__)

# A bulk request can fail on every item; the summary names this many, then counts.
MAX_MESSAGES_IN_DETAIL = 10
CONFLICT_MESSAGE = (
    "The request conflicts with a concurrent change to the same object. Retry it."
)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Answer SchedulerError, DRF errors and lost backing services as JSON.

    Every answer has `detail` (a sentence) and `code`; scheduler errors add the
    `field` they concern, validation errors the per-field `errors`.
    """
    if isinstance(exc, OperationalError | InterfaceError):
        logger.error("PostgreSQL unreachable: %s", exc)
        exc = ServiceUnavailable.down("postgresql", so=DATABASE_DOWN)
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        logger.error("Redis unreachable: %s", exc)
        exc = ServiceUnavailable.down("redis", so="the request could not be served")
    if isinstance(exc, SchedulerError):
        return _scheduler_error(exc)
    if isinstance(exc, IntegrityError):
        set_rollback()
        return Response({"detail": CONFLICT_MESSAGE, "code": "conflict"}, status=409)
    if isinstance(exc, DataError):
        # Serializers refuse what they know PostgreSQL rejects; this is the net.
        set_rollback()
        detail = f"PostgreSQL refused a value in the request: {exc}".strip()
        return Response({"detail": detail, "code": "invalid"}, status=400)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound(*exc.args)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, drf_exceptions.APIException):
        response.data = _api_exception_body(exc)
    return response


def _scheduler_error(exc: SchedulerError) -> Response:
    set_rollback()
    body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
    if exc.field:
        body["field"] = exc.field
    retry_after_s = exc.context.get("retry_after_s")
    if isinstance(exc, ServiceUnavailable):
        body, retry_after_s = exc.body(), exc.retry_after_s
    headers = {} if retry_after_s is None else {"Retry-After": str(retry_after_s)}
    return Response(body, status=exc.status_code, headers=headers)


def _api_exception_body(exc: drf_exceptions.APIException) -> dict[str, Any]:
    if isinstance(exc, drf_exceptions.ValidationError):
        body = {
            "detail": validation_summary(exc.detail),
            "code": "invalid",
            "errors": exc.detail,
        }
        field = _first_field(exc.detail)
        return {**body, "field": field} if field else body
    if isinstance(exc, drf_exceptions.Throttled):
        wait = getattr(exc, "wait", None)  # set by Throttled, missing from its stubs
        return {
            "detail": f"Too many requests from this account. Retry in {wait} "
            "seconds (the limit is set by API_THROTTLE_RATE).",
            "code": "throttled",
        }
    return {"detail": str(exc.detail), "code": exc.get_codes()}


def _first_field(detail: Any) -> str | None:
    """Name the first field a validation error concerns, if it names one: `topic`,
    or in a list of tasks the path the summary uses, `[3].topic` (or `[3]`)."""
    if not isinstance(detail, dict):
        return None
    name = next((name for name in detail if name != "non_field_errors"), None)
    if not isinstance(name, int):
        return None if name is None else str(name)
    inner = _first_field(detail[name])
    return f"[{name}]" if inner is None else _join(f"[{name}]", inner)


def validation_summary(detail: Any) -> str:
    """Turn DRF's nested error detail into one sentence naming each field."""
    messages = list(_flatten(detail, ""))
    shown = "; ".join(messages[:MAX_MESSAGES_IN_DETAIL])
    hidden = len(messages) - MAX_MESSAGES_IN_DETAIL
    return f"{shown}; and {hidden} more" if hidden > 0 else shown


def _flatten(detail: Any, path: str) -> Iterator[str]:
    """Yield `path: message` for every leaf, e.g. `[3].topic: Invalid ...`."""
    if isinstance(detail, dict):
        for name, inner in detail.items():
            inner_path = path if name == "non_field_errors" else _join(path, name)
            yield from _flatten(inner, inner_path)
    elif isinstance(detail, list):
        for index, inner in enumerate(detail):
            is_leaf = not isinstance(inner, dict | list)
            yield from _flatten(inner, path if is_leaf else f"{path}[{index}]")
    else:
        yield f"{path}: {detail}" if path else str(detail)


def _join(path: str, name: Any) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else str(name)
