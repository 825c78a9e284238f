"""Dynamic batching: the prepared inputs of concurrent requests run as one batch.

A request's inputs wait at most `window_s` for others (or until `max_batch` inputs are
waiting), then every waiting request with the same compiled options runs in one call of
the model on a single worker thread: model work never blocks the event loop, and one
batch runs at a time, so while it runs the next one gathers. The window is only waited
while a request the server has begun reading is still on its way (`expecting`): a lone
request runs at once instead of paying the window for nothing. When another batch will
run anyway (requests waiting or on their way), a batch leaves the requests that would
only push it past a bucket for that next one: 17 inputs run as 16, not padded to 32.
`max_batch=1` turns batching off (each request runs alone, with no window).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
from collections.abc import Callable, Hashable, Sequence
from typing import Any

Run = Callable[[list[Any], Hashable], list[Any]]  # (prepared inputs, options) -> rows


@dataclasses.dataclass
class _Job:
    items: Sequence[Any]
    key: Hashable  # the compiled options: only jobs with equal keys share a batch
    done: asyncio.Future


class Batcher:
    """Gathers jobs into batches and runs them off the event loop.

    Args:
      run: the model: prepared inputs and their compiled options in, one output row per
        input out, in order (`zoo.batching.Programs.run`). Called on a worker thread.
      max_batch: the most inputs in one batch (a larger request runs alone, in chunks).
      buckets: the batch sizes `run` pads to (default: no padding to avoid).
      window_s: how long the first waiting input waits for others.
      on_batch: called with each batch's input count (metrics).
      on_queue: called with the number of inputs waiting whenever it changes (metrics).
      name: names the worker thread.
    """

    def __init__(self, run: Run, *, max_batch: int, window_s: float,
                 buckets: Sequence[int] = (),
                 on_batch: Callable[[int], None] = lambda n: None,
                 on_queue: Callable[[int], None] = lambda n: None, name: str = "model"):
        if max_batch < 1 or window_s < 0:
            raise ValueError(f"max_batch must be >= 1 and window_s >= 0, not {max_batch}, {window_s}")
        self._run, self.max_batch, self.window_s = run, max_batch, window_s
        self.buckets = sorted(buckets)
        self._on_batch, self._on_queue = on_batch, on_queue
        self._pending: collections.deque[_Job] = collections.deque()
        self._waiting = 0  # inputs in _pending
        self._coming = 0  # requests begun (body being read, inputs prepared), not submitted
        self._arrived = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"zoo-{name}")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Starts gathering (in the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        """Stops after the batches already waiting have run."""
        while self._pending:
            await asyncio.sleep(self.window_s or 0.001)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)

    @contextlib.contextmanager
    def expecting(self):
        """Marks a request on its way to `submit` (wrap its reading and preparing), so a
        gathering batch waits for it; leaving, even by an error, unmarks it."""
        self._coming += 1
        try:
            yield
        finally:
            self._coming -= 1
            self._arrived.set()  # a gathering batch re-checks whether to wait on

    async def submit(self, items: Sequence[Any], key: Hashable) -> list[Any]:
        """The output rows for `items` (prepared inputs), once their batch has run."""
        if not items:
            return []
        job = _Job(items, key, asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self._queued(len(items))
        self._arrived.set()
        return await job.done

    def _queued(self, change: int) -> None:
        self._waiting += change
        self._on_queue(self._waiting)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            batch = [self._pending.popleft()]
            size = len(batch[0].items)
            deadline = loop.time() + self.window_s
            while size < self.max_batch:
                if not self._pending:
                    if not self._coming:
                        break  # nothing on its way: waiting would only add latency
                    self._arrived.clear()
                    try:
                        await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())
                    except TimeoutError:
                        break
                    continue
                job = self._pending[0]
                if job.key != batch[0].key or size + len(job.items) > self.max_batch:
                    break  # it starts the next batch
                batch.append(self._pending.popleft())
                size += len(job.items)
            size = self._fit_bucket(batch, size)
            self._queued(-size)
            await self._execute(batch, size)

    def _fit_bucket(self, batch: list[_Job], size: int) -> int:
        """Hands trailing jobs back to the queue while the batch stays at least the largest
        bucket it fills, if a next batch will run anyway: they would only be padding's
        company here, and ride in that batch instead. Returns the batch's new size."""
        if not (self._pending or self._coming):
            return size  # nothing else will run: padding costs less than another call
        filled = max((b for b in self.buckets if b <= size), default=size)
        while len(batch) > 1 and size - len(batch[-1].items) >= filled and size > filled:
            job = batch.pop()
            self._pending.appendleft(job)
            size -= len(job.items)
        return size

    async def _execute(self, batch: list[_Job], size: int) -> None:
        items = [item for job in batch for item in job.items]
        self._on_batch(size)
        try:
            rows = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._run, items, batch[0].key)
        except Exception as e:  # every request of the batch gets the error, the loop goes on
            for job in batch:
                if not job.done.done():
                    job.done.set_exception(e)
            return
        start = 0
        for job in batch:
            if not job.done.done():  # a client that went away cancelled its future
                job.done.set_result(rows[start:start + len(job.items)])
            start += len(job.items)
