"""Celery's broker is the scheduler's Redis: a restart must cost well under a slice.

kombu retries a lost connection after 2 s, then 4, 6...; a worker whose first
retry fell while Redis was down took no turn for up to 2 s after Redis was back
(`make chaos`, restart-redis). The app's connections retry much sooner.
"""

import pytest
from kombu.exceptions import OperationalError

from scheduler_site.celery import app
from scheduler_site.devstack.process import free_port


def test_a_lost_broker_connection_is_retried_within_half_a_second():
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    waits: list[float] = []
    connection = app.connection_for_read(nowhere)
    try:
        with pytest.raises(OperationalError):
            # As the worker's consumer calls it (celery/worker/consumer).
            connection.ensure_connection(
                lambda exc, wait: waits.append(wait), max_retries=4
            )
    finally:
        connection.release()
    assert len(waits) == 4
    assert max(waits) <= 0.5, waits
