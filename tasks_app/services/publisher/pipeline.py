"""Overlap two batches: one records its tasks while the next is taken and produced.

Recording a batch (updating the task rows) costs PostgreSQL more than producing
it costs Kafka, and a lone publisher waits on each in turn. Two workers, each
with its own database connection, overlap them. Batches are taken one after
another (the second skips the entries the first holds, FOR UPDATE SKIP LOCKED,
so it takes the next ones in id order) and numbered; then

- they produce strictly in that order, each only after the one before it was
  confirmed by Kafka, so Kafka holds every topic in id order;
- they commit strictly in that order, each only if the one before it committed:
  a lane reads a partition only up to its recorded end, so that end must never
  pass a batch whose tasks are not recorded yet. When a batch fails, every later
  batch rolls back, its entries return to the outbox, and the next run sends
  them again after the failed ones.

SKIP LOCKED also skips an entry that a cancel holds at that moment; the cancel
then deletes it, so nothing is overtaken unless that cancel fails after taking
its lock (a database error), in which case the entry is published after later
entries of its topic.
"""

import threading
import time
from collections.abc import Callable, Iterable

from django.db import connection, transaction

from rotation.kafka.producer import BatchProducer, Delivery
from tasks_app.services.publisher.batch import (
    OutboxRow,
    log_deliveries,
    produce,
    record_ends,
    record_tasks,
    take,
)


class _InOrder:
    """Let numbered batches pass one point strictly in order."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._turn = 0
        self.broken = False

    def wait(self, ticket: int) -> bool:
        """Wait until every earlier batch has passed; False if one failed."""
        with self._changed:
            self._changed.wait_for(lambda: self._turn == ticket)
            return not self.broken

    def pass_on(self, ticket: int, *, ok: bool) -> None:
        """Pass (after the earlier batches), marking later ones doomed on failure."""
        with self._changed:
            self._changed.wait_for(lambda: self._turn == ticket)
            self.broken = self.broken or not ok
            self._turn += 1
            self._changed.notify_all()


class _Baton:
    """Number batches as they are taken; order their producing and committing."""

    def __init__(self) -> None:
        self._taking = threading.Lock()
        self._issued = 0
        self.produces = _InOrder()
        self.commits = _InOrder()
        self.failed = False

    def take(
        self, take_rows: Callable[[], list[OutboxRow]]
    ) -> tuple[int, list[OutboxRow]]:
        """Take a batch and number it; batches are taken one at a time."""
        with self._taking:
            rows = take_rows()
            self._issued += 1
            return self._issued - 1, rows

    @property
    def broken(self) -> bool:
        """Tell whether a batch failed, so no later one may go on."""
        return self.failed or self.produces.broken or self.commits.broken


def publish_overlapped(
    *,
    producer: BatchProducer,
    blocked: Iterable[str],
    deadline: float,
    on_published: Callable[[list[Delivery]], None],
) -> None:
    """Publish with two workers until nothing is due, a batch fails or the
    deadline passes; re-raise the first failure in the calling thread."""
    baton = _Baton()
    blocked = list(blocked)
    failures: list[Exception] = []

    def work() -> None:
        try:
            while time.monotonic() < deadline and not baton.broken:
                deliveries = _overlapped_batch(baton, producer, blocked)
                if not deliveries:
                    return
                on_published(deliveries)
        except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread
            baton.failed = True
            failures.append(exc)

    helper = threading.Thread(target=_closing_connection(work), daemon=True)
    helper.start()
    work()
    helper.join()
    if failures:
        raise failures[0]


def _overlapped_batch(
    baton: _Baton, producer: BatchProducer, blocked: list[str]
) -> list[Delivery]:
    """Take, produce in turn, record and commit in turn one batch; return its
    deliveries, or nothing when it was empty or had to roll back."""
    ticket, committed = None, False
    try:
        with transaction.atomic():
            ticket, rows = baton.take(
                lambda: take(limit=None, blocked=blocked, skip_locked=True)
            )
            deliveries = _produce_in_turn(baton, ticket, producer, rows)
            if deliveries:
                record_tasks(rows=rows, deliveries=deliveries)
            if not (baton.commits.wait(ticket) and deliveries):
                transaction.set_rollback(True)
                committed = not rows  # nothing taken: nothing to keep in order
                return []
            record_ends(deliveries=deliveries)
        committed = True
    finally:
        if ticket is not None:
            baton.commits.pass_on(ticket, ok=committed)
    log_deliveries(deliveries)
    return deliveries


def _produce_in_turn(
    baton: _Baton, ticket: int, producer: BatchProducer, rows: list[OutboxRow]
) -> list[Delivery]:
    """Produce the batch once every earlier one was confirmed; nothing if one
    failed (or the batch is empty)."""
    deliveries: list[Delivery] = []
    try:
        if baton.produces.wait(ticket) and rows:
            deliveries = produce(producer=producer, rows=rows)
    finally:
        baton.produces.pass_on(ticket, ok=bool(deliveries) or not rows)
    return deliveries


def _closing_connection(work: Callable[[], None]) -> Callable[[], None]:
    """Run `work`, then close the thread's own database connection."""

    def run() -> None:
        try:
            work()
        finally:
            connection.close()

    return run
