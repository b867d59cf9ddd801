"""Cursor pagination: stable pages while tasks and slices keep arriving.

A cursor or page size the client tampered with is a 400 naming it: DRF would
answer an undecodable cursor with 404, ignore a bad page size, and pass a
decoded position of the wrong type to the database (a 500).
"""

from typing import Any, cast

from django.core.exceptions import ValidationError as ModelValidationError
from django.db import models
from django.db.models import Model, QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.views import APIView

from tasks_app.errors import InvalidInput

# The id is the submission sequence, so creation order is id order; sorting by
# the indexed id keeps every page an index range scan.
TASK_ORDERINGS = {"-id": "-id", "id": "id", "-created_at": "-id", "created_at": "id"}
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


INVALID_CURSOR = (
    "The cursor is not one this API issued. Follow the `next` and `previous` "
    "links as given, or start again without a cursor."
)


class SizedCursorPagination(CursorPagination):
    """Page with PAGE_SIZE rows by default; `?page_size=` from 1 to MAX_PAGE_SIZE."""

    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    model: type[Model] | None = None

    def paginate_queryset(
        self, queryset: QuerySet, request: Request, view: APIView | None = None
    ) -> list | None:
        self.model = queryset.model  # the cursor's position is one of its fields
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            raise InvalidInput(
                f"page_size must be a whole number from 1 to {MAX_PAGE_SIZE}, "
                f"not {raw[:20]!r}.",
                field=self.page_size_query_param,
            )
        return int(raw)

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:
            raise InvalidInput(INVALID_CURSOR, field=self.cursor_query_param) from exc
        if cursor is not None and cursor.position is not None:
            self._position_check(cursor.position)
        return cursor

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=MAX_PAGE_SIZE)
                parameter["description"] = (
                    f"Results per page, 1 to {MAX_PAGE_SIZE} (default {PAGE_SIZE})."
                )
            if parameter["name"] == self.cursor_query_param:
                parameter["description"] = (
                    "Opaque position from a previous page's `next` or `previous` "
                    "link; any other value is a 400."
                )
        return parameters

    def _position_check(self, position: str | int) -> None:
        """Refuse a position the ordering field could not hold (type, range, NUL)."""
        assert self.model is not None, "set by paginate_queryset"
        field = self.model._meta.get_field(self.ordering[0].lstrip("-"))
        try:
            if "\x00" in str(position):
                raise ModelValidationError("NUL")
            cast(models.Field, field).clean(position, None)
        except ModelValidationError as exc:
            raise InvalidInput(INVALID_CURSOR, field=self.cursor_query_param) from exc


class NewestFirstCursorPagination(SizedCursorPagination):
    """Page records newest first by their id (creation order, indexed)."""

    ordering = "-id"


class TaskCursorPagination(NewestFirstCursorPagination):
    """Page tasks newest first by default; `?ordering=` picks id or created_at."""

    def get_ordering(
        self, request: Request, queryset: QuerySet, view: APIView
    ) -> tuple[str, ...]:
        requested = request.query_params.get("ordering", self.ordering)
        if requested not in TASK_ORDERINGS:
            raise ValidationError(
                {
                    "ordering": [
                        f"Unknown ordering {requested!r}. Use one of: "
                        f"{', '.join(TASK_ORDERINGS)}."
                    ]
                }
            )
        return (TASK_ORDERINGS[requested],)

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        return [
            *super().get_schema_operation_parameters(view),
            {
                "name": "ordering",
                "required": False,
                "in": "query",
                "description": "Sort order (default -id, newest first).",
                "schema": {"type": "string", "enum": list(TASK_ORDERINGS)},
            },
        ]


class LookupCursorPagination(SizedCursorPagination):
    """Page by the view's lookup field, which is unique and never changes."""

    def get_ordering(
        self, request: Request, queryset: QuerySet, view: APIView
    ) -> tuple[str, ...]:
        return (view.lookup_field,)  # type: ignore[attr-defined]
