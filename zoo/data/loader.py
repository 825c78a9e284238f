"""Batches from in-memory arrays, through grain.

Training order is a seeded grain shuffle that differs per epoch and is random-access, so
a run resumed at global step `s` continues with exactly the batch it would have seen:
the data position is derived from the step, never stored. Whole batches are gathered
with one numpy fancy-index (no per-example Python); in a multi-process run each process
gathers only its own rows of every batch.
"""

from collections.abc import Iterator, Mapping

import numpy as np

Arrays = Mapping[str, np.ndarray]


def num_examples(arrays: Arrays) -> int:
    return len(next(iter(arrays.values())))


def steps_per_epoch(arrays: Arrays, batch_size: int) -> int:
    """Full batches per epoch (the last partial batch is dropped in training)."""
    return num_examples(arrays) // batch_size


def train_batches(arrays: Arrays, batch_size: int, *, seed: int, epoch: int,
                  start: int = 0, rows: slice = slice(None)) -> Iterator[dict[str, np.ndarray]]:
    """Shuffled full batches of epoch `epoch`, starting at batch `start`.

    Args:
      rows: which rows of each (global) batch to gather; default all.
    """
    import grain  # here, not at the top: `zoo predict` reads split sizes, never batches

    n = num_examples(arrays)
    order = grain.MapDataset.range(n).shuffle(seed=seed).repeat()[epoch * n:(epoch + 1) * n]
    batches = order.batch(batch_size, drop_remainder=True)
    for i in range(start, len(batches)):  # by index: iterating would start grain's
        indices = batches[i][rows]        # prefetch threads, which contend with XLA's
        yield {k: v[indices] for k, v in arrays.items()}


def eval_batches(arrays: Arrays, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Batches in order, the last one padded to full size, with a float32 "mask".

    Fixed shapes mean one compiled eval step; the mask keeps padding out of metrics.
    """
    n = num_examples(arrays)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        pad = batch_size - (stop - start)
        batch = {k: _pad(v[start:stop], pad) for k, v in arrays.items()}
        batch["mask"] = np.concatenate([np.ones(stop - start, np.float32),
                                        np.zeros(pad, np.float32)])
        yield batch


def _pad(x: np.ndarray, pad: int) -> np.ndarray:
    if pad == 0:
        return x
    return np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])


def holdout_sizes(n: int, val: float = 0.1, test: float = 0.2) -> dict[str, int]:
    """Split sizes for a data set that brings no splits of its own: `val` and `test`
    fractions of `n` (at least one example each), the rest to train."""
    n_val, n_test = max(1, round(n * val)), max(1, round(n * test))
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


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
