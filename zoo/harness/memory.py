"""The peak resident memory of a run's process tree: this process and its input workers.

`resource.getrusage` gives the peak of one process, or of the largest child that has
exited; a run's footprint is the sum over the tree at its fullest, so a thread samples
every process of the tree (psutil, which orbax already requires) once a second and
keeps the largest sum. The main process's own peak (VmHWM) is exact; the tree's is
sampled, and counts pages shared between processes (libraries) once per process.
"""

from __future__ import annotations

import threading

import psutil

SECONDS = 1.0


class PeakMemory:
    """Samples the resident memory of this process and its descendants until stopped."""

    def __init__(self, interval: float = SECONDS):
        self.interval, self.peak, self.processes = interval, 0, 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zoo-peak-memory", daemon=True)

    def __enter__(self) -> PeakMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> int:
        """The tree's resident bytes now (also folded into `peak`)."""
        me = psutil.Process()
        total, count = me.memory_info().rss, 1
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
                count += 1
            except psutil.Error:  # exited between listing and reading
                pass
        if total > self.peak:
            self.peak, self.processes = total, count
        return total

    def describe(self) -> str:
        return f"peak memory {self.peak / 2**30:.2f} GiB RSS ({self.processes} process(es))"
