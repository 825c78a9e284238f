"""Which examples form each batch, and batches read from any split.

Training order is a seeded shuffle that differs per epoch and is random-access, so
a run resumed at global step `s` continues with exactly the batch it would have seen:
the data position is derived from the step, never stored. So is every row's
augmentation seed: (seed, step, row). In a multi-process run each process takes only its
own rows of every batch. Arrays in memory are gathered whole batches at a time with one
numpy index (no per-example Python); other sources are read example by example
(`zoo.data.workers`; `zoo.data.pipeline` does it in worker processes).

A training split smaller than one batch makes one batch per epoch, its examples
repeated cyclically to the full size and marked by a float "mask" (1 for the first
occurrence of each), so the step keeps one compiled shape and the loss can leave the
repeats out (`zoo.task.row_mean`).

A task may bucket its training examples (`Task.buckets`, e.g. text lines by width):
each batch then draws its rows from one bucket (see `bucketed_batches`) and is cut to
that bucket's shapes, so a batch of short lines skips the padding of the longest (one
compiled program per bucket).
"""

from collections.abc import Callable, Iterator, Mapping

import numpy as np

from zoo.data.sources import ArraySource, Source, Split, as_source, split_size
from zoo.data.workers import OnBad, Request, read_batch

num_examples = split_size


def steps_per_epoch(split: Split, batch_size: int) -> int:
    """Full batches per epoch (the last partial batch is dropped in training), or 1 for
    a split smaller than one batch (padded, see `TrainOrder`)."""
    return max(1, num_examples(split) // batch_size)


class TrainOrder:
    """The rows of every training batch of one epoch: a function of (seed, epoch)."""

    def __init__(self, n: int, batch_size: int, *, seed: int, epoch: int,
                 buckets: np.ndarray | None = None):
        """`buckets`: each example's bucket (ints), or None for one shuffle of all."""
        self.batch_size, self.seed, self.epoch = batch_size, seed, epoch
        self.partial = n < batch_size
        if buckets is not None and not self.partial:
            self._batches = bucketed_batches(buckets, batch_size, seed=seed, epoch=epoch)
            return
        # One permutation per epoch (8 bytes an example, 40 ms for a million), then a
        # batch is a slice. grain's random-access shuffle cost 16 us of the main thread
        # per example, 12% of a LeNet step (benchmarks/README.md).
        size = min(n, batch_size)
        rows = np.random.default_rng([seed, epoch]).permutation(n)
        self._batches = rows[:n // size * size].reshape(-1, size)

    def __len__(self) -> int:
        return len(self._batches)

    def rows(self, i: int) -> np.ndarray:
        """The examples of batch `i` (all processes' rows; repeats not added)."""
        return self._batches[i]

    def request(self, split: str, i: int, rows: slice = slice(None), *, mask: bool = False,
                augment: bool = False) -> Request:
        """Batch `i` of the epoch (this process's `rows` of it).

        Args:
          mask: give the batch a "mask" even when all its rows are real.
          augment: give each row its generator's seed (seed, global step, row).
        """
        indices, real = self._batches[i], None
        if self.partial:
            real = np.arange(self.batch_size) < len(indices)
            indices = np.resize(indices, self.batch_size)
        elif mask:
            real = np.ones(self.batch_size, bool)
        seeds = None
        if augment:
            step = self.epoch * len(self) + i
            seeds = np.stack([np.full(self.batch_size, self.seed), np.full(self.batch_size, step),
                              np.arange(self.batch_size)], axis=1)[rows]
        return Request(split, indices[rows], None if real is None else real[rows], seeds)


def bucketed_batches(buckets: np.ndarray, batch_size: int, *, seed: int,
                     epoch: int) -> np.ndarray:
    """The rows [n // batch_size, batch_size] of one epoch's batches, each drawn from one
    bucket: every bucket shuffled and cut into full batches, the remainders of all
    buckets (fewer than a batch each) pooled, shuffled and cut too, then the batches
    shuffled. As many batches as an unbucketed epoch, a function of (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    batches, rest = [], []
    for bucket in np.unique(buckets):
        rows = rng.permutation(np.flatnonzero(buckets == bucket))
        full = len(rows) - len(rows) % batch_size
        batches += list(rows[:full].reshape(-1, batch_size))
        rest.append(rows[full:])
    rest = rng.permutation(np.concatenate(rest))
    full = len(rest) - len(rest) % batch_size
    batches += list(rest[:full].reshape(-1, batch_size))
    return np.stack(batches)[rng.permutation(len(batches))]


def bucket_keys(split: Split, key: Callable[[Mapping[str, np.ndarray]], np.ndarray]) -> np.ndarray:
    """Each example's bucket: `key` (`zoo.task.Buckets.key`) of the split's arrays, or
    of each example in turn from a source not in memory."""
    source = as_source(split)
    if isinstance(source, ArraySource):
        return np.asarray(key(source.arrays))
    return np.concatenate([key({k: v[None] for k, v in source[i].items()})
                           for i in range(len(source))])


def eval_requests(split: str, n: int, batch_size: int, rows: slice = slice(None)) -> Iterator[Request]:
    """Batches in order, the last one padded to full size (repeating its last example),
    each with its "mask" of real rows: one compiled eval step, padding out of the metrics."""
    for start in range(0, n, batch_size):
        indices = np.minimum(np.arange(start, start + batch_size), n - 1)
        real = np.arange(start, start + batch_size) < n
        yield Request(split, indices[rows], real[rows])


def gather(split: Split, request: Request, on_bad: OnBad = "raise"):
    """The batch `request` names, read in this process: arrays by one numpy index per
    field, any other source example by example (returns `workers.BatchRead`)."""
    source = as_source(split)
    if isinstance(source, ArraySource) and (request.seeds is None or source.augment is None):
        arrays = source.gather(request.indices)
        if request.real is not None:
            arrays["mask"] = request.real.astype(np.float32)
        return arrays, []
    read = read_batch(source, request, on_bad)
    return read.arrays, read.bad


def train_batches(split: Split, batch_size: int, *, seed: int, epoch: int, start: int = 0,
                  rows: slice = slice(None)) -> Iterator[dict[str, np.ndarray]]:
    """Shuffled full batches of epoch `epoch`, starting at batch `start`, read here.

    Args:
      rows: which rows of each (global) batch to read; default all.
    """
    order = TrainOrder(num_examples(split), batch_size, seed=seed, epoch=epoch)
    for i in range(start, len(order)):
        yield gather(split, order.request("train", i, rows))[0]


def eval_batches(split: Split, batch_size: int,
                 rows: slice = slice(None)) -> Iterator[dict[str, np.ndarray]]:
    """Batches in order with a float32 "mask", read here (see `eval_requests`)."""
    for request in eval_requests("eval", num_examples(split), batch_size, rows):
        yield gather(split, request)[0]


def holdout_sizes(n: int, val: float = 0.1, test: float = 0.2) -> dict[str, int]:
    """Split sizes for a data set that brings no splits of its own: `val` and `test`
    fractions of `n` (at least one example each), the rest to train."""
    n_val, n_test = max(1, round(n * val)), max(1, round(n * test))
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


SPLIT_SEED = 20240601  # data sets without splits of their own split the same way every run


def three_splits(splits: Mapping[str, Source]) -> dict[str, Source]:
    """train, val and test from whichever a data set brings: a missing val is held out
    of train (2%, at least 1, at most 10,000); without test, val is the test split and
    val is held out of train; train alone is split 70/10/20."""
    train = splits["train"]
    n = len(train)
    if "val" not in splits and "test" not in splits:
        idx = split_indices(n, holdout_sizes(n), SPLIT_SEED)
        return {name: train.subset(i) for name, i in idx.items()}
    test = splits.get("test", splits.get("val"))
    val = splits.get("val") if "test" in splits else None
    if val is None:
        n_val = max(1, min(n // 50, 10_000))
        idx = split_indices(n, {"train": n - n_val, "val": n_val}, SPLIT_SEED)
        train, val = train.subset(idx["train"]), train.subset(idx["val"])
    return {"train": train, "val": val, "test": test}


def split_indices(n: int, sizes: Mapping[str, int], seed: int) -> dict[str, np.ndarray]:
    """Disjoint, seeded random index sets of the given sizes (in order of `sizes`)."""
    if sum(sizes.values()) > n:
        raise ValueError(f"split sizes {dict(sizes)} exceed {n} examples")
    perm = np.random.default_rng(seed).permutation(n)
    out, offset = {}, 0
    for name, size in sizes.items():
        out[name] = np.sort(perm[offset:offset + size])
        offset += size
    return out
