"""OpenAPI: what drf-spectacular cannot infer, so the schema says what the API does.

- Every operation lists each error status it can answer (`errors_postprocess`,
  a POSTPROCESSING_HOOK), all in the `Error` shape.
- Request bodies refuse unknown fields, as RejectUnknownFieldsMixin does.
- A handler is one of the registered names (read when the schema is built).
- The lean answer to `Prefer: return=minimal` has no other fields.
"""

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import (
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.openapi import AutoSchema

from tasks_app.handlers import handler_names

ERROR_REF = {"$ref": "#/components/schemas/Error"}
SUBMISSION_REF = {"$ref": "#/components/schemas/TaskSubmission"}
BODY_METHODS = {"post", "put", "patch"}

# Status -> when it happens, for the operations it applies to (see _statuses).
ERROR_DESCRIPTIONS = {
    "400": "Invalid input; `detail` says what and `field` where.",
    "401": "No credentials, or a wrong token.",
    "403": "Signed in, but this route needs a permission the user lacks.",
    "404": "No such object, or one the user may not see.",
    "409": "The object's state forbids this, or it already exists.",
    "413": "The body is over MAX_REQUEST_BYTES.",
    "415": "The body is not UTF-8 or not a media type the route reads.",
    "429": "Too many requests (API_THROTTLE_RATE); Retry-After says when to retry.",
    "503": "PostgreSQL or Redis is unreachable; `service` names it.",
}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    """Name the error statuses an operation can answer, from its shape."""
    parameters = operation.get("parameters", [])
    signed_in = {} not in operation.get("security", [{}])
    statuses = ["503"]
    if signed_in:
        statuses += ["401", "403", "429"]
    if "{" in path:
        statuses.append("404")
    if method in BODY_METHODS:  # any body sent is checked (tasks_app/middleware.py)
        statuses += ["413", "415"]
    if "requestBody" in operation:
        statuses += ["400", "409"]  # 409: a name taken, or a concurrent change
    elif any(p["in"] in {"query", "header"} for p in parameters):
        statuses.append("400")
    return statuses


def errors_postprocess(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Add the error answers each operation can give but does not declare."""
    components = result.get("components", {}).get("schemas", {})
    _bound_bulk_submission(components)
    _close_minimal_answer(components)
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            _require_submission_body(operation)
            responses = operation.setdefault("responses", {})
            for status in _statuses(path, method, operation):
                responses.setdefault(
                    status,
                    {
                        "description": ERROR_DESCRIPTIONS[status],
                        "content": {"application/json": {"schema": ERROR_REF}},
                    },
                )
    return result


def _close_minimal_answer(components: dict[str, Any]) -> None:
    """A lean answer holds id and status only: closing it keeps a full task from
    also matching it in TasksAccepted's oneOf."""
    if "TaskAccepted" in components:
        components["TaskAccepted"]["additionalProperties"] = False


def _bound_bulk_submission(components: dict[str, Any]) -> None:
    """A list of tasks holds 1 to SCHEDULER_MAX_BULK_TASKS (TaskCreateListSerializer
    checks it; drf-spectacular does not carry a list serializer's bounds)."""
    for variant in components.get("TaskSubmission", {}).get("oneOf", []):
        if variant.get("type") == "array":
            variant.update(minItems=1, maxItems=settings.SCHEDULER_MAX_BULK_TASKS)


def _require_submission_body(operation: dict[str, Any]) -> None:
    """A submission needs a body; drf-spectacular cannot tell for a oneOf."""
    body = operation.get("requestBody", {})
    schemas = [media.get("schema") for media in body.get("content", {}).values()]
    if SUBMISSION_REF in schemas:
        body["required"] = True


class RejectUnknownFieldsExtension(OpenApiSerializerExtension):
    """Mark bodies of RejectUnknownFieldsMixin serializers closed to other keys."""

    target_class = "tasks_app.api.serializers.base.RejectUnknownFieldsMixin"
    match_subclasses = True

    def map_serializer(self, auto_schema: AutoSchema, direction: str) -> Any:
        schema = auto_schema._map_serializer(
            self.target, direction, bypass_extensions=True
        )
        return {**schema, "additionalProperties": False}


class HandlerNameFieldExtension(OpenApiSerializerFieldExtension):
    """List the registered handlers as the field's allowed values."""

    target_class = "tasks_app.api.serializers.base.HandlerNameField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> Any:
        return {"type": "string", "enum": handler_names()}
