"""The table sizes the million-task run reports after its purge and a VACUUM
(bench/lib/reads.py `vacuum`): what a VACUUM can give back must show, whatever
another connection does to the table meanwhile."""

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from django.db import connection, transaction

from bench.lib.reads import sizes, vacuum
from tasks_app.models import Task
from tasks_app.services.sql import TABLES
from tasks_app.services.tasks import TaskSpec, task_submit_many
from tests.db_catalog import vacuums_so_far

pytestmark = pytest.mark.django_db(transaction=True)

TASK_TABLE = TABLES["task"]
HOLD_AT_MOST_S = 60.0


def _deleted_tasks(topic: str) -> None:
    """Store tasks, then delete every task: the table's heap is dead rows."""
    task_submit_many(
        submitted_by=None, specs=[TaskSpec(topic=topic, message=n) for n in range(500)]
    )
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TASK_TABLE}")


@pytest.fixture
def meanwhile() -> Iterator[Callable[..., None]]:
    """Run statements in a transaction of another connection until the next
    VACUUM of the task table has finished (a minute at most, should the test
    fail before its VACUUM); then commit and close."""
    pool = ThreadPoolExecutor(max_workers=1)
    held: list[Future[None]] = []

    def hold(*statements: str) -> None:
        begun = threading.Event()
        vacuums = vacuums_so_far(Task)

        def run() -> None:
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    for statement in statements:
                        cursor.execute(statement)
                    begun.set()
                    give_up_at = time.monotonic() + HOLD_AT_MOST_S
                    while (
                        vacuums_so_far(Task) == vacuums
                        and time.monotonic() < give_up_at
                    ):
                        time.sleep(0.05)
            finally:
                connection.close()

        held.append(pool.submit(run))
        begun.wait(10)

    yield hold
    for future in held:
        future.result(timeout=HOLD_AT_MOST_S + 10)
    pool.shutdown()


def test_rows_an_older_snapshot_still_sees_go_once_it_ends(topic_name, meanwhile):
    """A transaction that began before the purge keeps its deleted rows for a
    VACUUM that runs meanwhile (PostgreSQL cannot remove a row another snapshot
    may still read): the sizes then showed a purged table as full."""
    meanwhile(
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        f"SELECT count(*) FROM {TASK_TABLE}",
    )
    _deleted_tasks(topic_name)

    vacuum(("task",))

    [task] = sizes(("task",))
    assert task.heap == 0


def test_an_empty_tail_left_behind_for_a_lock_is_given_back(topic_name, meanwhile):
    """A VACUUM gives the file's empty tail back only under an exclusive lock;
    another connection holding any lock on the table then makes it skip that."""
    _deleted_tasks(topic_name)
    meanwhile(f"LOCK TABLE {TASK_TABLE} IN ACCESS SHARE MODE")

    vacuum(("task",))

    [task] = sizes(("task",))
    assert task.heap == 0
