"""The load of one run: topics created through the API, tasks POSTed in bulk on a
schedule while the faults happen, every acceptance noted with its time."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from tests.chaos.api import ApiClient
from tests.handlers import HANDLER_PATH

TASKS_PATH = "/api/tasks/"
TOPICS_PATH = "/api/topics/"
# A refused or unanswered POST is sent again after this pause, with the same
# idempotency keys, so a request that was stored but not answered is not doubled.
RETRY_S = 0.25
# Well under SCHEDULER_MAX_BULK_TASKS (1,000), so one POST stays short.
MAX_BLOCK = 500


@dataclass(frozen=True)
class Workload:
    """What one run submits, and how fast.

    Tasks are numbered 0..tasks-1 and dealt round-robin over the topics; each
    POST carries the next block of numbers, one POST every `post_every_s`, so
    submission spans `submit_s` (longer if POSTs are refused and retried).
    """

    tasks: int
    topics: int = 4
    sleep_ms: int = 5
    submit_s: float = 24.0
    post_every_s: float = 0.5
    give_up_s: float = 60.0

    @property
    def posts(self) -> int:
        """How many bulk POSTs the schedule has."""
        by_time = math.ceil(self.submit_s / self.post_every_s)
        return max(1, by_time, math.ceil(self.tasks / MAX_BLOCK))


@dataclass(frozen=True)
class Accepted:
    """A task the API acknowledged: its number, id, topic and when (epoch s)."""

    n: int
    task_id: str
    topic: str
    at: float


def topics_create(api: ApiClient, names: list[str], *, slice_ms: int) -> None:
    """Create single-partition topics (one ordered lane each) for the handler."""
    for name in names:
        body = {"name": name, "handler": HANDLER_PATH, "slice_ms": slice_ms}
        answer = api.request("POST", TOPICS_PATH, body)
        if answer is None or answer[0] != 201:
            raise RuntimeError(f"could not create topic {name}: {answer}")


def topics_pause(api: ApiClient, names: list[str]) -> None:
    """Pause a finished run's topics, so a wedged lane cannot take turns from
    the next run's lanes (best effort: the next run does not depend on it)."""
    for name in names:
        api.request("POST", f"{TOPICS_PATH}{name}/pause/")


class Submitter(threading.Thread):
    """POST the workload on its schedule from a thread; retry until accepted."""

    def __init__(
        self, api: ApiClient, topics: list[str], workload: Workload, run_id: str
    ) -> None:
        super().__init__(name=f"submit-{run_id}", daemon=True)
        self.api = api
        self.topics = topics
        self.workload = workload
        self.run_id = run_id
        self.accepted: dict[int, Accepted] = {}
        self.given_up = 0
        self.started_at = 0.0
        self.finished_at = 0.0

    def run(self) -> None:
        self.started_at = time.time()
        begin = time.monotonic()
        for index, block in enumerate(self._blocks()):
            pause = begin + index * self.workload.post_every_s - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self._post_until_accepted(block)
        self.finished_at = time.time()

    def _blocks(self) -> list[range]:
        size = math.ceil(self.workload.tasks / self.workload.posts)
        return [
            range(first, min(first + size, self.workload.tasks))
            for first in range(0, self.workload.tasks, size)
        ]

    def _post_until_accepted(self, block: range) -> None:
        body = [self._task(n) for n in block]
        deadline = time.monotonic() + self.workload.give_up_s
        while True:
            answer = self.api.request("POST", TASKS_PATH, body)
            if answer is not None and answer[0] in (200, 201):
                self._note(block, answer[1])
                return
            if time.monotonic() > deadline:
                self.given_up += len(block)
                return
            time.sleep(RETRY_S)

    def _task(self, n: int) -> dict:
        return {
            "topic": self.topics[n % len(self.topics)],
            "message": {"n": n, "sleep_ms": self.workload.sleep_ms},
            "idempotency_key": f"{self.run_id}-{n}",
        }

    def _note(self, block: range, tasks: list[dict]) -> None:
        now = time.time()
        for n, task in zip(block, tasks, strict=True):
            self.accepted[n] = Accepted(n, str(task["id"]), str(task["topic"]), now)
