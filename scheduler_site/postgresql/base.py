"""Django's PostgreSQL backend, reading `timestamptz` with psycopg's C loader.

Django (5.2) reads every `timestamptz` through a Python subclass of psycopg's
pure-Python loader, to set the tzinfo it wants, so psycopg's C loader is never
used (Django ticket #36960, psycopg issue #1273). Every task row carries five
timestamps and a worker reads 500 rows a batch: a batch's fetch took 16-17 ms
with Django's loader and 6 ms with psycopg's (docs/benchmarks.md).

When Django's connection time zone is UTC (this project's TIME_ZONE), the
server sends timestamps in UTC and psycopg's loader returns them aware in UTC,
which is what Django's loader returns; so the connection uses psycopg's.
With any other time zone Django's own loader stays.
"""

from datetime import UTC, datetime
from typing import Any

from django.db.backends.postgresql import base
from psycopg import postgres
from psycopg.abc import AdaptContext, Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format

TIMESTAMPTZ_OID = postgres.types["timestamptz"].oid


class UtcTimestamptzLoader(Loader):
    """Load `timestamptz` with the loader psycopg registers for it: its C one when
    psycopg's binary package is installed."""

    # Django's create_cursor() compares this with the connection's time zone
    # and registers its own loader on the cursor when they differ.
    timezone = UTC

    def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        fastest = postgres.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
        if fastest is None:  # pragma: no cover - psycopg always registers one
            raise RuntimeError("psycopg has no loader for timestamptz")
        # psycopg calls the instance's `load`: the C loader's, with no Python
        # frame in between.
        self.load = fastest(oid, context).load  # type: ignore[method-assign]

    def load(self, data: Buffer) -> datetime:  # replaced in __init__
        raise NotImplementedError


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's wrapper, whose connections load `timestamptz` in C under UTC."""

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        if self.timezone == UTC:
            connection.adapters.register_loader("timestamptz", UtcTimestamptzLoader)
        return connection
