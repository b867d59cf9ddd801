"""Resident memory of the stack's processes over a run, sampled in a thread."""

import threading
import time

import psutil


class RssSampler:
    """Sample the RSS of named processes every `every_s` seconds until stopped.

    `samples[name]` holds (epoch seconds, bytes); a process that has exited is
    no longer sampled. Each process is measured alone: the workers run the solo
    pool, so they have no children.
    """

    def __init__(self, pids: dict[str, int], *, every_s: float):
        self.pids = pids
        self.every_s = every_s
        self.samples: dict[str, list[tuple[float, int]]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # the state at the end, too

    def _sample(self) -> None:
        now = time.time()
        for name, pid in self.pids.items():
            try:
                rss = psutil.Process(pid).memory_info().rss
            except psutil.NoSuchProcess:
                continue
            self.samples[name].append((now, rss))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every_s)
