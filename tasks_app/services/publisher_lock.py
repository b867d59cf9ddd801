"""The one active publisher: a PostgreSQL session advisory lock.

Whoever produces task messages holds it (a publisher run, or a lane healing
itself), so no two producers interleave messages of one partition.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

PUBLISHER_LOCK_KEY = 0x5C4ED_0B0C
LOCK_RETRY_S = 0.005


@contextmanager
def publisher_lock(*, wait_s: float) -> Iterator[bool]:
    """Hold the publisher's lock for the block if it frees up within `wait_s`;
    yield whether it is held."""
    deadline = time.monotonic() + wait_s
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [PUBLISHER_LOCK_KEY])
            held = bool(cursor.fetchone()[0])
            if held or time.monotonic() >= deadline:
                break
            time.sleep(LOCK_RETRY_S)
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [PUBLISHER_LOCK_KEY])
