"""Real Celery processes for the rotation tests: rotation workers, publisher, beat."""

import os
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import redis
from django.db import connection

from rotation.lanes import Lane, text
from rotation.members import Members
from scheduler_site.devstack.celery_processes import CeleryProcesses

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0

# Short intervals so failures are noticed quickly in tests.
T = TypeVar("T")

TEST_TUNING = {
    "SCHEDULER_HEARTBEAT_S": "0.5",
    # Beat's database scheduler keeps whole seconds.
    "SCHEDULER_WATCHDOG_S": "1",
    "SCHEDULER_PUBLISH_INTERVAL": "1",
    "SCHEDULER_LEASE_GRACE_MS": "700",
    "SCHEDULER_POLL_TIMEOUT_MS": "50",
    "LOG_LEVEL": "INFO",
}


def worker_database_url() -> str:
    """Return the URL of the test database, for the processes a test starts."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def redis_database(number: int) -> redis.Redis:
    """Return a client of database `number` on the test run's Redis.

    Not `from_url(REDIS_URL, db=number)`: the URL's own `/0` wins over `db=`, and
    a test that empties "its" database would empty the shared one.
    """
    url = urllib.parse.urlsplit(os.environ["REDIS_URL"])
    return redis.Redis.from_url(url._replace(path=f"/{number}").geturl())


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.05,
) -> T:
    """Poll until `condition()` is truthy and return it; fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class Cluster(CeleryProcesses):
    """The rotation's Celery processes for a test module, with test tuning."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        super().__init__(log_dir, {**env, **TEST_TUNING})
        self.members = Members(
            redis.Redis.from_url(env["REDIS_URL"]),
            heartbeat_s=float(TEST_TUNING["SCHEDULER_HEARTBEAT_S"]),
        )

    def node(self, name: str) -> str:
        """Return the Celery node name (and member name) of a worker."""
        return f"{name}@{socket.gethostname()}"

    def start_worker(self, name: str) -> str:
        """Start a rotation worker and wait until it has joined as a member."""
        self.worker(name, "rotation")
        node = self.node(name)
        wait_for(
            lambda: node in self.members.live(),
            timeout_s=START_TIMEOUT_S,
            what=f"worker {name} to join",
        )
        return node

    def start_control(self) -> None:
        """Start beat and the publisher worker (which also runs the watchdog)."""
        self.worker("publisher", "publish")
        self.beat()

    def holder_of(self, topic: str, partition: int = 0) -> str | None:
        """Return the member holding a default-group lane's lease now (the
        lease's value is token:member:nonce)."""
        value = self.members.client.get(Lane("default", topic, partition).key("lease"))
        return text(value).split(":")[1] if value else None

    def name_of(self, member: str) -> str:
        """Map a member (node name) back to the worker name it was started as."""
        return member.split("@", 1)[0]


@contextmanager
def running_cluster(
    env: dict[str, str], log_dir: Path, workers: Iterable[str]
) -> Iterator[Cluster]:
    """Run beat, the publisher and the named rotation workers for a block."""
    cluster = Cluster(env, log_dir)
    try:
        cluster.start_control()
        for name in workers:
            cluster.start_worker(name)
        yield cluster
    finally:
        cluster.stop()


# Writing one beat entry while a beat writes it too: tries before giving up.
ENTRY_WRITE_TRIES = 5


def beat_entries_restore() -> None:
    """Write beat's built-in entries (publisher, watchdog) back to the database.

    Beat writes them when it starts; the flush after a transactional test
    deletes them, and beat's database scheduler re-reads its entries every five
    minutes, so a module's long-running beat would stop ticking without them.
    """
    from django.core.exceptions import ValidationError
    from django.db import OperationalError
    from django_celery_beat.schedulers import ModelEntry

    from scheduler_site.celery import app

    for name, fields in app.conf.beat_schedule.items():
        for attempt in range(1, ENTRY_WRITE_TRIES + 1):
            try:
                ModelEntry.from_entry(name, app=app, **fields)
                break
            except (ValidationError, OperationalError):
                # A running beat wrote the entry between this look-up and
                # insert (django-celery-beat checks the name's uniqueness
                # itself: not an IntegrityError, which get_or_create retries),
                # or the two writes deadlocked. Written again, it is updated.
                if attempt == ENTRY_WRITE_TRIES:
                    raise


# Polls in a row (0.05 s apart) that `settle` must see quiet.
QUIET_POLLS = 10


def settle(cluster: Cluster) -> None:
    """Pause every topic and wait until no worker is in a slice and no other
    connection is in a transaction, for QUIET_POLLS polls in a row.

    Call at the end of a test: pytest-django then empties the tables, and a
    slice still writing would deadlock with that TRUNCATE. A member shows no
    lane a moment before its slice's record is written, and a turn queued
    before the pause may still start: one quiet poll was not enough (the
    TRUNCATE deadlocked with a worker's write once in a CI run).
    """
    from tasks_app.models import Topic

    Topic.objects.update(paused=True)
    quiet_in_a_row = [0]

    def quiet() -> bool:
        idle = not _writers() and not any(
            member.lane for member in cluster.members.describe()
        )
        quiet_in_a_row[0] = quiet_in_a_row[0] + 1 if idle else 0
        return quiet_in_a_row[0] >= QUIET_POLLS

    wait_for(
        quiet,
        timeout_s=STOP_TIMEOUT_S,
        what="the workers to leave their slices and finish writing",
    )


def _writers() -> int:
    """Count the other connections to this database that are in a transaction."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
            "AND state IN ('active', 'idle in transaction')"
        )
        return cursor.fetchone()[0]
