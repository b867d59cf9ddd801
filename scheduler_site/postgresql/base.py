"""Django's PostgreSQL backend, reading `timestamptz` with psycopg's C loader.

Django (5.2) reads every `timestamptz` through a Python subclass of psycopg's
pure-Python loader, to set the tzinfo it wants, so psycopg's C loader is never
used (Django ticket #36960, psycopg issue #1273). Every task row carries five
timestamps and a worker reads 500 rows a batch: with psycopg's loader a
batch's fetch took a third to two thirds of the time (docs/benchmarks.md).

When Django's connection time zone is UTC (this project's TIME_ZONE), the
server sends timestamps in UTC and psycopg's loader returns them aware in UTC,
which is what Django's loader returns; so the connection uses psycopg's.
With any other time zone Django's own loader stays.
"""

from datetime import UTC
from typing import Any

from django.db.backends.postgresql import base
from psycopg import abc, postgres
from psycopg.abc import AdaptContext
from psycopg.adapt import Loader
from psycopg.pq import Format

TIMESTAMPTZ_OID = postgres.types["timestamptz"].oid
# psycopg's own loader for the type: its C one when the binary package is there.
_registered = postgres.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
if _registered is None:
    raise ImportError("psycopg registers no loader for timestamptz")
_PSYCOPG_LOADER: type[abc.Loader] = _registered


class UtcTimestamptzLoader(Loader):
    """Stand for psycopg's own `timestamptz` loader: building one builds that.

    psycopg's C loader is final, so no subclass can carry the `timezone` that
    Django's create_cursor() compares with the connection's (registering its
    own loader on every cursor when they differ); this class carries it, and
    psycopg gets its own loader, which it runs without any Python call.
    """

    timezone = UTC

    def __new__(cls, oid: int, context: AdaptContext | None = None) -> abc.Loader:  # type: ignore[misc]
        return _PSYCOPG_LOADER(oid, context)


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's wrapper, whose connections load `timestamptz` in C under UTC."""

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        if self.timezone == UTC:
            connection.adapters.register_loader("timestamptz", UtcTimestamptzLoader)
        return connection
