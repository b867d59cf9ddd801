"""Serializer building blocks shared by every input serializer."""

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

# Browsable-API HTML forms post Django's CSRF token alongside the fields.
FORM_ONLY_FIELDS = frozenset({"csrfmiddlewaretoken"})


class RejectUnknownFieldsMixin:
    """Refuse fields the serializer does not know, naming them.

    DRF drops unknown keys silently, so a typo (`mesage`, `runat`) would be
    accepted and the intended value lost; a 400 that names the field lets the
    caller fix the request. Read-only fields are known and ignored, so a client
    may send back what it read.
    """

    fields: dict[str, serializers.Field]

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
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
        return super().to_internal_value(data)  # type: ignore[misc]


class ErrorSerializer(serializers.Serializer):
    """The shape of every error answer (documented in the schema)."""

    detail = serializers.CharField(help_text="What went wrong and what to do.")
    code = serializers.CharField(help_text="Machine-readable kind, e.g. `invalid`.")
    field = serializers.CharField(
        required=False, help_text="The request field concerned, when there is one."
    )
    errors = serializers.JSONField(
        required=False, help_text="Per-field messages of a validation error."
    )


class QueryParamsSerializer(serializers.Serializer):
    """Filters from the query string; a filter given empty is refused, not ignored.

    DRF treats an empty optional form value as absent, so `?topic=` would list
    every topic's tasks while the caller meant one.
    """

    def to_internal_value(self, data: Any) -> Any:
        blank = [name for name in self.fields if name in data and data[name] == ""]
        if blank:
            raise serializers.ValidationError(
                {name: ["Give a value, or leave the filter out."] for name in blank}
            )
        return super().to_internal_value(data)
