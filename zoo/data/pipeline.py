"""A run's input pipeline: the batches of every split, read ahead by worker processes.

Arrays in memory without host augmentation take the fast path: whole batches gathered
in the main process, exactly as `loader.train_batches` does. Every other split (a
`Source` of files, or arrays with a `Task.host_augment`) is read by `workers.Readers`,
several batches ahead, while the device runs the previous steps. The order, the rows of
this process and every augmentation seed come from (seed, epoch, step), so the batches
do not depend on the number of workers, and a resumed run reads what it would have.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from zoo.data import loader
from zoo.data.sources import ArraySource, Augment, Source, Split, as_source
from zoo.data.workers import OnBad, Readers, Request

AUTO = -1  # workers: from the core count
POLL_SECONDS = 0.005  # how often a wait for a batch asks whether the device is idle yet


def default_workers() -> int:
    """Input worker processes for this machine: one per core the process may use, less
    one for the main process (which steps the device), at least 1 and at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min((cores or 1) - 1, 8))


class Inputs:
    """The batches of a run's splits.

    Args:
      splits: split name -> arrays or `Source`.
      augment: the task's host augmentation of training examples (`Task.host_augment`).
      workers: worker processes (`AUTO`: `default_workers()`; 0: read in this process).
      on_bad: an unreadable example stops the run ("raise") or is left out ("skip").
      buckets: the task's `zoo.task.Buckets` (`Task.buckets`): each training batch
        from one bucket, at its shapes.
    """

    def __init__(self, splits: Mapping[str, Split], *, seed: int, augment: Augment | None = None,
                 workers: int = AUTO, on_bad: OnBad = "raise",
                 buckets: Any = None):
        self.seed, self.on_bad, self.buckets = seed, on_bad, buckets
        self.splits: dict[str, Source] = {name: as_source(s) for name, s in splits.items()}
        self.bucket_of = None if buckets is None else loader.bucket_keys(self.splits["train"],
                                                                          buckets.key)
        if augment is not None:
            self.splits["train"] = self.splits["train"].with_augment(augment)
        self.streamed = sorted(name for name, s in self.splits.items() if not _in_memory(s))
        # Training batches carry a "mask" when rows may be left out (a split smaller than
        # one batch always has one): under `skip`, any streamed example may be unreadable.
        self.mask = on_bad == "skip" and "train" in self.streamed
        self.workers = 0
        if self.streamed:
            self.workers = default_workers() if workers == AUTO else workers
        self.readers = Readers({name: self.splits[name] for name in self.streamed},
                               self.workers, on_bad)
        self.bad: collections.Counter[str] = collections.Counter()  # "origin: problem" -> times
        self.wait_seconds = 0.0  # the device sat idle waiting for worker batches
        # Whether the device is still computing what it was given (set by the trainer):
        # steps are dispatched ahead, so waiting for a batch meanwhile costs nothing.
        self.device_busy: Callable[[], bool] = lambda: False

    def size(self, split: str) -> int:
        return len(self.splits[split])

    def steps_per_epoch(self, batch_size: int) -> int:
        return loader.steps_per_epoch(self.splits["train"], batch_size)

    def train(self, batch_size: int, *, epoch: int, start: int = 0,
              rows: slice = slice(None)) -> Iterator[dict[str, np.ndarray]]:
        """Training batches `start`.. of `epoch` (this process's `rows` of each)."""
        order = loader.TrainOrder(self.size("train"), batch_size, seed=self.seed, epoch=epoch,
                                  buckets=self.bucket_of)
        augment = self.splits["train"].augment is not None
        requests = (order.request("train", i, rows, mask=self.mask, augment=augment)
                    for i in range(start, len(order)))
        batches = self._read("train", requests)
        if self.buckets is None:
            return batches
        return (self.buckets.shape(batch, int(self.bucket_of[order.rows(i)].max()))
                for i, batch in enumerate(batches, start))

    @property
    def train_programs(self) -> int:
        """How many train-step programs a run compiles: one per training bucket."""
        return 1 if self.bucket_of is None else len(np.unique(self.bucket_of))

    def bucket_shapes(self, batch: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """`batch` at the shapes of every training bucket (just `batch` without buckets):
        what the train step is compiled for."""
        if self.buckets is None:
            return [batch]
        return [self.buckets.shape(batch, int(b)) for b in np.unique(self.bucket_of)]

    def evaluate(self, split: str, batch_size: int,
                 rows: slice = slice(None)) -> Iterator[dict[str, np.ndarray]]:
        """`split` in order, the last batch padded, with a "mask" (see `loader.eval_requests`)."""
        return self._read(split, loader.eval_requests(split, self.size(split), batch_size, rows))

    def _read(self, split: str, requests: Iterator[Request]) -> Iterator[dict[str, np.ndarray]]:
        """Batches of `requests` (of `split`) in order: gathered here, or read by the
        workers with two batches per worker in flight while the caller works on the one
        it was given (reads of a stream left unfinished are cancelled where not yet
        begun)."""
        pending: collections.deque = collections.deque()
        ahead = 2 * self.workers
        try:
            for request in requests:
                if request.split not in self.streamed:
                    yield loader.gather(self.splits[request.split], request)[0]
                    continue
                pending.append(self.readers.submit(request))
                if len(pending) > ahead:
                    yield self._collect(pending.popleft())
            while pending:
                yield self._collect(pending.popleft())
        finally:
            for future in pending:
                self.readers.discard(future)
            self.readers.release(split)

    def _collect(self, future) -> dict[str, np.ndarray]:
        """The batch of `future`; the time waited for it once the device is idle counts
        as input wait (while it computes earlier steps, the wait is hidden)."""
        while not future.done() and self.device_busy():
            concurrent.futures.wait([future], timeout=POLL_SECONDS)
        t0 = time.perf_counter()
        read = self.readers.result(future)
        self.wait_seconds += time.perf_counter() - t0
        self.bad.update(read.bad)
        return read.arrays

    def describe(self) -> str:
        """'2 input worker processes (train, val, test streamed)', or '' if all in memory."""
        if not self.streamed:
            return ""
        where = f"{self.workers} input worker process(es)" if self.workers else \
            "the main process (--workers 0)"
        return f"{', '.join(self.streamed)} read by {where}"

    def close(self) -> None:
        self.readers.close()


def _in_memory(source: Source) -> bool:
    """Arrays whose batches the main process gathers whole (no per-example work)."""
    return isinstance(source, ArraySource) and source.augment is None
