"""Serializer building blocks shared by every input serializer."""

from collections.abc import Mapping
from typing import Any

from django.http import QueryDict
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tasks_app.errors import InvalidInput
from tasks_app.services.tasks import message_size_check
from tasks_app.validators import (
    KAFKA_NAME_MAX_CHARS,
    KAFKA_TOPIC_PATTERN,
    validate_kafka_topic_name,
)

# Browsable-API HTML forms post Django's CSRF token alongside the fields.
FORM_ONLY_FIELDS = frozenset({"csrfmiddlewaretoken"})


def _json_type(value: Any) -> str:
    """Name a decoded JSON value's type as JSON calls it."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), "null")


def _expected_json_type(field: serializers.Field) -> str | None:
    """Name the JSON type a field documents, or None when any value may come."""
    if isinstance(field, serializers.BooleanField):
        return "boolean"
    if isinstance(field, serializers.IntegerField):
        return "integer"
    if isinstance(field, serializers.FloatField):
        return "number"
    if isinstance(field, serializers.ManyRelatedField | serializers.ListField):
        return "array"
    if isinstance(
        field,
        serializers.CharField | serializers.ChoiceField | serializers.DateTimeField,
    ):
        return "string"
    return None


def json_type_mismatch(field: serializers.Field, value: Any) -> tuple[str, str] | None:
    """Name the JSON type `field` documents and the one `value` has, if they differ
    (strictly: `true` is no integer); the config file is held to it too."""
    expected = _expected_json_type(field)
    if expected is None or (value is None and field.allow_null):
        return None
    got = _json_type(value)
    if expected == "integer":
        matches = got == "number" and isinstance(value, int)
    else:
        matches = got == expected
    if matches and _lists_names(field):
        matches = all(isinstance(item, str) for item in value)
        expected, got = "array of strings", "array with other items"
    return None if matches else (expected, got)


def _lists_names(field: serializers.Field) -> bool:
    """Tell whether a field is a list of objects named by a slug (group topics)."""
    return isinstance(field, serializers.ManyRelatedField) and isinstance(
        field.child_relation, serializers.SlugRelatedField
    )


class RejectUnknownFieldsMixin(serializers.Serializer):
    """Refuse fields the serializer does not know, and JSON values of another type.

    DRF drops unknown keys silently, so a typo (`mesage`, `runat`) would be
    accepted and the intended value lost; a 400 that names the field lets the
    caller fix the request. Read-only fields are known and ignored, so a client
    may send back what it read. DRF also coerces (`"paused": 0`, `"topic": 5`);
    a JSON body must send the type the schema documents. Form bodies (the
    browsable API) carry only text and are coerced as usual.
    """

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            self._unknown_check(data)
            if not isinstance(data, QueryDict):
                self._json_types_check(data)
        return super().to_internal_value(data)

    def _unknown_check(self, data: Mapping) -> None:
        unknown = sorted(set(data) - set(self.fields) - FORM_ONLY_FIELDS)
        if unknown:
            writable = ", ".join(
                name for name, field in self.fields.items() if not field.read_only
            )
            raise serializers.ValidationError(
                {
                    name: [f"Unknown field. Fields you can send: {writable}."]
                    for name in unknown
                }
            )

    def _json_types_check(self, data: Mapping) -> None:
        errors = {
            name: ["Send a JSON {}, not {}.".format(*mismatch)]
            for name, field in self.fields.items()
            if name in data
            and not field.read_only
            and (mismatch := json_type_mismatch(field, data[name]))
        }
        if errors:
            raise serializers.ValidationError(errors)


@extend_schema_field(
    {
        "type": "string",
        "pattern": KAFKA_TOPIC_PATTERN,
        "minLength": 1,
        "maxLength": KAFKA_NAME_MAX_CHARS,
    }
)
class KafkaNameField(serializers.CharField):
    """A topic or group name: Kafka's rule, checked and documented as a pattern."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("validators", [validate_kafka_topic_name])
        super().__init__(**kwargs)


class HandlerNameField(serializers.CharField):
    """A handler's registered name; the schema lists them (api/schema.py)."""


# JSON Schema for "any JSON value but null" (null cannot be stored as a message).
NOT_NULL_JSON = {
    "oneOf": [
        {"type": "object", "additionalProperties": True},
        {"type": "array", "items": {}},
        {"type": "string"},
        {"type": "number"},
        {"type": "boolean"},
    ]
}


# Python's recursion limit bounds how deep a message can nest.
MESSAGE_TOO_DEEP = "The message nests too deeply."


@extend_schema_field(NOT_NULL_JSON)
class MessageField(serializers.JSONField):
    """A task's message: any JSON value except null, within the size limit."""

    def to_internal_value(self, data: Any) -> Any:
        """Decode a form's JSON text; refuse what encodes too large, or not at all.

        DRF's field encodes a parsed value only to see that it can; the size
        check encodes every message anyway, so its one encoding does both
        (DRF's cost 4.7-5.7 us a message, docs/benchmarks.md "Ingest").
        """
        try:
            if getattr(data, "is_json_string", False):
                data = super().to_internal_value(data)
            message_size_check(message=data)
        except InvalidInput as exc:
            raise serializers.ValidationError(exc.message) from exc
        except (TypeError, ValueError):
            self.fail("invalid")
        except RecursionError as exc:
            raise serializers.ValidationError(MESSAGE_TOO_DEEP) from exc
        return data


class ErrorSerializer(serializers.Serializer):
    """The shape of every error answer (documented in the schema)."""

    detail = serializers.CharField(help_text="What went wrong and what to do.")
    code = serializers.CharField(help_text="Machine-readable kind, e.g. `invalid`.")
    field = serializers.CharField(
        required=False, help_text="The request field concerned, when there is one."
    )
    # A declared field: DRF's metaclass takes it off the class, so it does not
    # shadow the serializer's own `errors`.
    errors = serializers.JSONField(  # type: ignore[assignment]
        required=False, help_text="Per-field messages of a validation error."
    )


class QueryParamsSerializer(serializers.Serializer):
    """Filters from the query string; a filter given empty is refused, not ignored.

    DRF treats an empty optional form value as absent, so `?topic=` would list
    every topic's tasks while the caller meant one.
    """

    def to_internal_value(self, data: Any) -> Any:
        blank = [str(n) for n in self.fields if n in data and data[n] == ""]
        if blank:
            raise serializers.ValidationError(
                {name: ["Give a value, or leave the filter out."] for name in blank}
            )
        return super().to_internal_value(data)
