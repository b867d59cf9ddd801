"""The project's PostgreSQL backend: Django's, with timestamps read in C.

Django's psycopg support reads every `timestamptz` through a Python subclass of
psycopg's pure-Python loader, so psycopg's C loader is never used. Every task
row carries five timestamps; a worker reads 500 rows a batch.
"""

from datetime import UTC, datetime

import pytest
from django.db import connection
from psycopg import postgres
from psycopg.pq import Format

pytestmark = pytest.mark.django_db

TIMESTAMPTZ = postgres.types["timestamptz"].oid

# Literals the server gets in other zones and precisions; it sends them in UTC.
LITERALS = [
    "2026-11-30 20:08:25.317582+00",
    "2026-11-30 20:08:25+05:30",
    "2026-03-29 01:59:59.999999-09:30",
    "1970-01-01 00:00:00.000001+00",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
]


def test_timestamps_are_read_by_psycopgs_fastest_loader():
    """The loader a Django cursor reads with loads by psycopg's own loader for
    the type: its C one when psycopg's binary package is installed."""
    fastest = postgres.adapters.get_loader(TIMESTAMPTZ, Format.TEXT)
    with connection.cursor() as cursor:
        loader_class = cursor.cursor.adapters.get_loader(TIMESTAMPTZ, Format.TEXT)
        loader = loader_class(TIMESTAMPTZ, cursor.cursor)
    assert type(loader.load.__self__) is fastest


def test_timestamps_read_as_djangos_loader_reads_them():
    """The same instants, aware in UTC, as Django's own loader gives."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT v::timestamptz FROM unnest(%s::text[]) AS v", [LITERALS])
        fast = [row[0] for row in cursor.fetchall()]
    expected = [
        datetime(2026, 11, 30, 20, 8, 25, 317582, tzinfo=UTC),
        datetime(2026, 11, 30, 14, 38, 25, tzinfo=UTC),
        datetime(2026, 3, 29, 11, 29, 59, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    assert fast == expected
    assert all(value.tzinfo is UTC for value in fast)
