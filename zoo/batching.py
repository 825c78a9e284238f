"""Fixed-shape prediction batches: one compiled program per batch bucket.

Predicting on 1, 5 or 300 inputs must not compile a program per count. Each input is
prepared on the host into arrays of one fixed shape (`Prepared`); inputs travel in
chunks of at most the largest bucket, each chunk padded (with copies of its first row)
up to the smallest bucket that holds it. `Programs` compiles its function once per
(bucket, options) and keeps it, so a long-lived predictor, or a server that compiles
every bucket at start-up (`Programs.warm_up`), never compiles twice; the persistent
compilation cache makes the first compile of a later process a disk read.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

BUCKETS = (1, 8, 32, 128)  # batch sizes compiled; a larger request runs in chunks of the last


@dataclasses.dataclass
class Prepared:
    """One input made ready for the model.

    Attributes:
      arrays: the model's inputs for this example, without a batch axis, each of the
        same shape for every input of the task (images resized or letterboxed, lines
        and sentences padded).
      context: whatever maps the outputs back onto the input (its size, the
        letterbox transform, the input itself); never sent to the device.
    """

    arrays: dict[str, np.ndarray]
    context: Any = None


def bucket_for(n: int, buckets: Sequence[int] = BUCKETS) -> int:
    """The smallest bucket holding `n` rows (`n` at most the largest bucket)."""
    return next(b for b in sorted(buckets) if b >= n)


def stack(prepared: Sequence[Prepared], size: int) -> dict[str, np.ndarray]:
    """The examples' arrays as one batch of `size` rows, padded with copies of the first
    (real values: padding never produces a NaN that a reader could mistake for a result)."""
    rows = list(prepared) + [prepared[0]] * (size - len(prepared))
    return {key: np.stack([row.arrays[key] for row in rows]) for key in prepared[0].arrays}


class Programs:
    """`fn(model, batch, options)` compiled per (bucket, options), run over any number of
    prepared inputs.

    Args:
      fn: a pure function of the model (None without one), a batch of arrays and the
        options (static: hashable; a new value compiles anew). Returns a dict of arrays
        with a leading batch axis.
      model: an NNX module, split once; its state is an argument of the compiled
        program (not a constant baked into it).
      buckets: the batch sizes compiled.
    """

    def __init__(self, fn: Callable[..., dict], model: nnx.Module | None = None, *,
                 buckets: Sequence[int] = BUCKETS):
        self.buckets = tuple(sorted(buckets))
        graphdef, self.state = nnx.split(model) if model is not None else (None, None)
        self._jitted = jax.jit(functools.partial(_call, fn=fn, graphdef=graphdef),
                               static_argnums=2)
        self._compiled: dict[tuple[int, Hashable], Callable] = {}
        self._compiling = threading.Lock()  # a server's worker threads compile a bucket once
        self.compile_seconds = 0.0

    def program(self, bucket: int, options: Hashable, example: Prepared) -> Callable:
        """The compiled program for `bucket` rows shaped like `example` (compiled once)."""
        key = (bucket, options)
        with self._compiling:
            if key not in self._compiled:
                t0 = time.perf_counter()
                batch = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
                                     stack([example], bucket))
                self._compiled[key] = self._jitted.lower(self.state, batch, options).compile()
                self.compile_seconds += time.perf_counter() - t0
        return self._compiled[key]

    def warm_up(self, example: Prepared, options: Hashable) -> None:
        """Compiles every bucket now (a server's start-up), so no request waits for XLA."""
        for bucket in self.buckets:
            self.program(bucket, options, example)

    def run(self, prepared: Sequence[Prepared], options: Hashable) -> list[dict[str, np.ndarray]]:
        """Each input's outputs (numpy, batch axis removed), in order."""
        rows: list[dict[str, np.ndarray]] = []
        largest = self.buckets[-1]
        for start in range(0, len(prepared), largest):
            chunk = prepared[start:start + largest]
            bucket = bucket_for(len(chunk), self.buckets)
            outputs = self.program(bucket, options, chunk[0])(self.state, stack(chunk, bucket))
            outputs = jax.device_get(outputs)
            rows += [{k: np.asarray(v[i]) for k, v in outputs.items()} for i in range(len(chunk))]
        return rows


def _call(state: Any, batch: dict, options: Hashable, *, fn: Callable,
          graphdef: Any) -> dict:
    model = None if graphdef is None else nnx.merge(graphdef, state)
    return fn(model, batch, options)
