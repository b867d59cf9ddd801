"""Paging through tables of millions of rows in the admin.

Django's changelist counts the rows it pages through. Counting a million tasks
is a full index (or, right after heavy writes, table) scan and the slowest part
of the page; a count needs only to be exact while there are few pages, so it is
exact up to EXACT_COUNT_LIMIT rows and PostgreSQL's estimate of the query's
rows past it (the planner's, from EXPLAIN). A package gives the estimate alone
(django-postgresql-estimated-count); the paginator and the exact count below
the limit would still be written here, for the five lines it would save.
"""

import json
from functools import cached_property

from django.core.paginator import Paginator
from django.db.models import QuerySet

EXACT_COUNT_LIMIT = 10_000
# Rows on a page of the long record lists (tasks, slices), not Django's 100:
# the changelist draws a task row in 0.6-1.2 ms (pages of 100 rows against 50,
# a million tasks stored; docs/benchmarks.md), so 100 rows took it past 100 ms.
ROWS_PER_PAGE = 50


class EstimatedCountPaginator(Paginator):
    """Count exactly up to EXACT_COUNT_LIMIT rows; past it, estimate."""

    @cached_property
    def count(self) -> int:
        """Return the exact count up to the limit, else the planner's estimate
        (never below the limit)."""
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        exact = queryset[: EXACT_COUNT_LIMIT + 1].count()
        if exact <= EXACT_COUNT_LIMIT:
            return exact
        return max(exact, _planned_rows(queryset))


def _planned_rows(queryset: QuerySet) -> int:
    """Return how many rows PostgreSQL's planner expects the query to return."""
    [plan] = json.loads(queryset.order_by().explain(format="json"))
    return int(plan["Plan"]["Plan Rows"])
