"""Cursor pagination: stable pages while tasks and slices keep arriving."""

from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.views import APIView

# The id is the submission sequence, so creation order is id order; sorting by
# the indexed id keeps every page an index range scan.
TASK_ORDERINGS = {"-id": "-id", "id": "id", "-created_at": "-id", "created_at": "id"}
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class SizedCursorPagination(CursorPagination):
    """Page with PAGE_SIZE rows by default; `?page_size=` up to MAX_PAGE_SIZE."""

    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


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
