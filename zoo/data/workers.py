"""Input worker processes: the examples of a batch read (decoded, resized, augmented) in
parallel, with a policy for unreadable ones.

The main process decides everything that makes a run reproducible (which examples form a
batch, each row's augmentation seed) and sends it as a `Request`; a worker only reads. So
the batches are the same for any number of workers, or none (`workers=0` reads in the
main process), and a resumed run reads exactly the batches it would have read.

The workers are a `concurrent.futures.ProcessPoolExecutor` of spawned processes that live
for the whole run and serve every split. They import numpy, PIL and the sources' own
modules (about 30 MB each, a fraction of a second to start), not JAX. grain's
`mp_prefetch` was the alternative: its workers import grain, which imports JAX and orbax
(about 2 CPU-seconds and 190 MB of RSS per worker here), and start afresh for every
iterator (each epoch, each evaluation). A worker that dies (killed, out of memory, a
crashing decoder) breaks the pool, which fails the waiting batch at once: one error,
never a hang.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import importlib.util
import multiprocessing
import os
import pickle
import sys
import threading
import time
import types
from collections.abc import Mapping
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import shared_memory
from typing import Literal

import numpy as np

from zoo.data.sources import Example, Source
from zoo.errors import ZooError

OnBad = Literal["raise", "skip"]


@dataclasses.dataclass(frozen=True)
class Request:
    """One batch to read: this process's rows of it.

    Attributes:
      split: which source.
      indices: the example index of each row.
      real: per row, False for a padding row (a repeated example the mask hides); None
        when every row is real and the batch carries no mask.
      seeds: per row, the entropy of its augmentation generator (training), or None to
        read examples unaugmented (evaluation).
      reuse: a shared-memory block of an earlier batch, already read, to write this one
        into (set by `Readers`).
    """

    split: str
    indices: np.ndarray
    real: np.ndarray | None = None
    seeds: np.ndarray | None = None
    reuse: str | None = None


@dataclasses.dataclass
class BatchRead:
    """A batch as read: its arrays (in shared memory, on their way from a worker), and
    the examples left out under `skip`."""

    arrays: dict[str, np.ndarray] | SharedArrays
    bad: list[str]  # "origin: problem", one per row left out


class Blocks:
    """The shared-memory blocks this process has open, by name.

    A batch's block carries a later batch of the same stream once read
    (`Request.reuse`), and the reading process keeps it mapped: its pages are allocated
    and zeroed once, not for every batch (for 4.8 MB, most of the 5 CPU-ms a batch's
    transport cost a worker, and of the reader's 1).
    """

    def __init__(self):
        self.open: dict[str, shared_memory.SharedMemory] = {}

    def get(self, name: str) -> shared_memory.SharedMemory:
        if name not in self.open:
            self.open[name] = shared_memory.SharedMemory(name=name)
        return self.open[name]

    def new(self, size: int) -> shared_memory.SharedMemory:
        block = shared_memory.SharedMemory(create=True, size=max(size, 1))
        self.open[block.name] = block
        return block

    def drop(self, name: str, *, unlink: bool) -> None:
        """Closes this process's view of block `name`; `unlink` frees it for good."""
        block = self.open.pop(name, None)
        if block is None and unlink:
            with contextlib.suppress(FileNotFoundError):
                block = shared_memory.SharedMemory(name=name)
        if block is not None:
            block.close()
            if unlink:
                with contextlib.suppress(FileNotFoundError):
                    block.unlink()


@dataclasses.dataclass(frozen=True)
class SharedArrays:
    """Arrays a worker wrote into one shared-memory block: what crosses the pool's pipe
    is this name and layout, not the pixels (a batch of 128 images of 112x112 is 4.8 MB,
    which a pipe carries in 64 KB pieces, each a switch between two processes)."""

    name: str
    fields: tuple[tuple[str, str, tuple[int, ...], int], ...]  # key, dtype, shape, offset

    @classmethod
    def put(cls, arrays: Mapping[str, np.ndarray], blocks: Blocks,
            reuse: str | None = None) -> SharedArrays:
        """`arrays` copied into block `reuse` if it is large enough (else it is freed),
        or into a new block."""
        fields, size = [], 0
        for key, array in arrays.items():
            fields.append((key, array.dtype.str, array.shape, size))
            size += -(-array.nbytes // 64) * 64  # each field 64-byte aligned
        block = blocks.get(reuse) if reuse else None
        if block is None or block.size < size:
            if reuse:
                blocks.drop(reuse, unlink=True)
            block = blocks.new(size)
        for key, dtype, shape, offset in fields:
            np.ndarray(shape, dtype, block.buf, offset)[...] = arrays[key]
        return cls(block.name, tuple(fields))

    def take(self, blocks: Blocks) -> dict[str, np.ndarray]:
        """The arrays, copied out (the block may then carry another batch)."""
        block = blocks.get(self.name)
        return {key: np.ndarray(shape, dtype, block.buf, offset).copy()
                for key, dtype, shape, offset in self.fields}


def read_batch(source: Source, request: Request, on_bad: OnBad) -> BatchRead:
    """Reads and stacks the rows of `request`.

    Under `skip`, an unreadable example's row is filled with a readable example of the
    batch and masked out (the batch then carries "mask"), so shapes never change.

    Raises:
      ZooError: naming the example's file, under `raise`, or when no row is readable.
    """
    rows: list[Example | None] = []
    bad: list[str] = []
    for row, index in enumerate(request.indices):
        rng = None if request.seeds is None else np.random.default_rng(request.seeds[row])
        try:
            rows.append(source.example(int(index), rng))
        except Exception as e:  # any failure of a user's file; JAX is not in here
            problem = describe_failure(source, int(index), e)
            if on_bad == "raise":
                raise bad_example_error(problem) from None
            rows.append(None)
            bad.append(problem)
    good = next((r for r in rows if r is not None), None)
    if good is None:
        raise ZooError(f"no example of a batch of {len(rows)} is readable; the first: {bad[0]}")
    arrays = {key: np.stack([(r if r is not None else good)[key] for r in rows])
              for key in good}
    if bad or request.real is not None:
        mask = np.ones(len(rows), np.float32) if request.real is None else \
            request.real.astype(np.float32)
        mask[[i for i, r in enumerate(rows) if r is None]] = 0.0
        arrays["mask"] = mask
    return BatchRead(arrays, bad)


def bad_example_error(problem: str) -> ZooError:
    return ZooError(f"{problem}; fix or remove it, or pass --on-bad-example skip to leave "
                    f"such examples out")


def describe_failure(source: Source, index: int, error: Exception) -> str:
    """'FILE: problem' (a ZooError from zoo's readers already names the file)."""
    if isinstance(error, ZooError):
        return str(error)
    return f"{source.origin(index)}: {type(error).__name__}: {error}"


class Readers:
    """Reads batches of a run's sources: in `workers` processes, or in this one (0).

    `submit` returns a future; batches come back in the order their futures are read.
    """

    def __init__(self, sources: Mapping[str, Source], workers: int, on_bad: OnBad):
        self.sources, self.on_bad, self.workers = dict(sources), on_bad, workers
        self._pool = process_pool(self.sources, workers, on_bad) if workers > 0 else None
        self._blocks = Blocks()  # of batches on their way from the workers
        self._read: dict[str, list[str]] = collections.defaultdict(list)  # split -> blocks
        # Kept here: a broken pool forgets its processes, and `died` reports their exit codes.
        self._processes = list(getattr(self._pool, "_processes", {}).values())

    def submit(self, request: Request) -> concurrent.futures.Future:
        if self._pool is None:
            future = concurrent.futures.Future()
            try:
                future.set_result(read_batch(self.sources[request.split], request, self.on_bad))
            except Exception as e:
                future.set_exception(e)
            return future
        with contextlib.suppress(IndexError):  # a block of a batch of this split, read
            request = dataclasses.replace(request, reuse=self._read[request.split].pop())
        try:
            future = self._pool.submit(_read_in_worker, request)
        except BrokenProcessPool:
            raise self.died() from None
        future.request = request  # for `_recycle`
        return future

    def result(self, future: concurrent.futures.Future) -> BatchRead:
        """The batch of `future`; a dead worker becomes one clear `ZooError`."""
        try:
            read = future.result()
        except BrokenProcessPool:
            raise self.died() from None
        if isinstance(read.arrays, SharedArrays):
            arrays = read.arrays.take(self._blocks)
            self._recycle(future)
            read = BatchRead(arrays, read.bad)
        return read

    def discard(self, future: concurrent.futures.Future) -> None:
        """Lets go of a batch no one will read: its block is reused once written (or
        the block it was to be written into, if it never will be)."""
        if not future.cancel():
            future.add_done_callback(self._recycle)
        elif future.request.reuse:
            self._read[future.request.split].append(future.request.reuse)

    def release(self, split: str) -> None:
        """Frees the blocks kept for `split`'s batches (its stream has ended): between
        streams, /dev/shm holds no more than the batches in flight."""
        for name in self._read.pop(split, []):
            self._blocks.drop(name, unlink=True)

    def _recycle(self, future: concurrent.futures.Future) -> None:
        """Makes the block of `future`'s batch (read, or never to be) the next one's of
        its split; a block the worker found too small and replaced is closed here too."""
        if future.cancelled() or future.exception() is not None:
            return
        arrays, request = future.result().arrays, future.request
        if isinstance(arrays, SharedArrays):
            if request.reuse and request.reuse != arrays.name:
                self._blocks.drop(request.reuse, unlink=False)
            self._read[request.split].append(arrays.name)

    def died(self) -> ZooError:
        """The error for a broken pool, naming the exit codes of the processes that died.

        The pool's own thread reaps a dead worker too; a `join` racing it can find the
        process gone before its exit code is recorded, so this waits up to 2 s for them."""
        deadline = time.monotonic() + 2
        for process in self._processes:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            while process.exitcode is None and time.monotonic() < deadline:
                time.sleep(0.01)
        codes = sorted({p.exitcode for p in self._processes if p.exitcode not in (None, 0)})
        how = f" (exit code {', '.join(map(str, codes))})" if codes else ""
        return ZooError(f"an input worker process died{how}, killed or out of memory; "
                        f"lower --workers or the batch size, or run with --workers 0 to "
                        f"read in the main process and see the error")

    def pids(self) -> list[int]:
        return [p.pid for p in self._processes]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for name in {*self._blocks.open, *(n for names in self._read.values() for n in names)}:
            self._blocks.drop(name, unlink=True)
        self._read.clear()


def process_pool(sources: Mapping[str, Source], workers: int,
                 on_bad: OnBad) -> concurrent.futures.ProcessPoolExecutor:
    """`workers` spawned processes holding `sources` (see `installed`), started now.

    A spawned process normally imports the parent's `__main__` again: a user's script
    that calls `zoo.fit` at top level would then train once more in every worker. The
    workers need nothing from it, so they are started with `__main__` hidden.
    """
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
        initargs=(_module_files(), pickle.dumps(dict(sources)), on_bad))
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:  # each of the first `workers` submissions starts one process
        started = [pool.submit(int) for _ in range(workers)]
    finally:
        sys.modules["__main__"] = main
    concurrent.futures.wait(started)
    return pool


def install(sources: Mapping[str, Source], on_bad: OnBad) -> None:
    """Makes `sources` this process's own (as a worker's), to run worker functions here."""
    _WORKER.update(sources=dict(sources), on_bad=on_bad)


def installed(split: str) -> tuple[Source, OnBad]:
    """In a worker of `process_pool`: the source of `split` and the bad-example policy."""
    return _WORKER["sources"][split], _WORKER["on_bad"]


_WORKER: dict = {}  # in a worker process: its sources and policy


def _start_worker(files: dict[str, str], blob: bytes, on_bad: OnBad) -> None:
    """Unpickles the sources; a module it cannot import by name (a `--plugin FILE.py`
    defining a source) is loaded from its file, as the main process loaded it."""
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    while True:
        try:
            install(pickle.loads(blob), on_bad)
            return
        except ModuleNotFoundError as e:
            if e.name not in files or e.name in sys.modules:
                raise
            spec = importlib.util.spec_from_file_location(e.name, files[e.name])
            module = importlib.util.module_from_spec(spec)
            sys.modules[e.name] = module
            spec.loader.exec_module(module)


def _exit_with_parent(parent: int, poll: float = 0.5) -> None:
    """Ends this worker when its parent is gone (SIGKILLed: no shutdown message comes,
    and the pool's queue never reports end-of-file, as every worker holds both ends)."""
    while os.getppid() == parent:
        time.sleep(poll)
    os._exit(0)


def _read_in_worker(request: Request) -> BatchRead:
    source, on_bad = installed(request.split)
    read = read_batch(source, request, on_bad)
    blocks = Blocks()  # closed at once: a block the reader frees must not stay mapped here
    try:
        return BatchRead(SharedArrays.put(read.arrays, blocks, request.reuse), read.bad)
    except OSError:  # no shared memory here (or /dev/shm full): through the pipe
        return read
    finally:
        for name in list(blocks.open):
            blocks.drop(name, unlink=False)


def _module_files() -> dict[str, str]:
    """The file of every top-level module loaded here, for `_start_worker`."""
    return {name: module.__file__ for name, module in list(sys.modules.items())
            if "." not in name and isinstance(getattr(module, "__file__", None), str)}
