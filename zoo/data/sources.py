"""Splits as random access to examples: arrays in memory, or files read on demand.

A `Dataset` split is either a dict of arrays (every example in memory: the fast path,
whole batches gathered with one numpy index) or a `Source`: `len(source)` examples and
`source[i]`, one example as {field: array} of fixed shapes, read only when a batch needs
it. The harness reads sources in input worker processes (`zoo.data.workers`), which
receive them pickled: keep a source's state small (file names, offsets and labels as
numpy arrays, never decoded data) and define it in a module that does not import JAX,
so that a worker starts in a fraction of a second with a few tens of MB.

A source splits reading into `read` (the example as stored: an image at its file's own
size) and `finish` (brought to the split's fixed shapes, e.g. resized), so that a
training-time host augmentation (`Task.host_augment`, e.g. a random-resized crop)
works on the example as read, at full resolution, and returns the fixed shapes itself.
"""

from __future__ import annotations

import abc
import copy
import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

Example = dict[str, np.ndarray]
# A training-time host augmentation: the example as read and a seeded generator in, the
# example at the split's fixed shapes out. Runs in the input workers: a module-level
# function (or functools.partial of one) in a module that does not import JAX.
Augment = Callable[[Example, np.random.Generator], Example]


class Source(abc.ABC):
    """A split's examples, read on demand. Subclass it for a layout of your own.

    Implement `__len__`, `read` and `fingerprint`; override `finish` when examples as
    read differ in shape, and `origin` to name the file of an example in error messages.
    """

    augment: Augment | None = None  # set by the harness from `Task.host_augment`

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of examples."""

    @abc.abstractmethod
    def read(self, index: int) -> Example:
        """Example `index` as stored: decoded, but images at their own size.

        Raises:
          ZooError or any exception, for an unreadable example: the harness names
          `origin(index)` and applies `--on-bad-example`.
        """

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A digest that changes when the examples do, cheap enough for large data sets
        (file names, sizes and modification times; shard digests; array bytes)."""

    def finish(self, example: Example) -> Example:
        """`read`'s example at the split's fixed shapes (default: as read)."""
        return example

    def origin(self, index: int) -> str:
        """Where example `index` comes from (a file), for error messages."""
        return f"example {index}"

    def __getitem__(self, index: int) -> Example:
        """Example `index` as evaluated and packed: read and finished, never augmented."""
        return self.finish(self.read(index))

    def example(self, index: int, rng: np.random.Generator | None) -> Example:
        """Example `index` for training: augmented from the example as read when the
        source has an `augment` (and `rng` is given), else as `self[index]`."""
        if self.augment is None or rng is None:
            return self[index]
        return self.augmented(index, self.augment, rng)

    def augmented(self, index: int, augment: Augment, rng: np.random.Generator) -> Example:
        """Example `index` as read, through `augment`. A source of files may override it
        to do both at once (`ImageFiles`: a crop decoded at reduced scale)."""
        return augment(self.read(index), rng)

    def with_augment(self, augment: Augment | None) -> Source:
        """A copy of this source whose training examples pass through `augment`."""
        out = copy.copy(self)
        out.augment = augment
        return out

    def subset(self, indices: Sequence[int] | np.ndarray) -> Source:
        """The examples at `indices`, in that order (a split of a larger source)."""
        return Subset(self, np.asarray(indices, np.int64))

    def spread(self, n: int) -> Source:
        """`n` examples evenly spaced over the source (all when n is 0 or at least the
        length): a cap on a split that is ordered (by class, say) still samples all of it."""
        return self if not n or n >= len(self) else self.subset(np.arange(n, dtype=np.int64) * len(self) // n)


class ArraySource(Source):
    """Examples held in memory as arrays with a leading example axis."""

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        self.arrays = dict(arrays)
        sizes = {len(v) for v in self.arrays.values()}
        if len(sizes) != 1:
            raise ValueError(f"arrays of different lengths: "
                             f"{ {k: len(v) for k, v in self.arrays.items()} }")

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def read(self, index: int) -> Example:
        return {k: v[index] for k, v in self.arrays.items()}

    def gather(self, indices: np.ndarray) -> Example:
        """A whole batch with one numpy index per field (no per-example Python)."""
        return {k: v[indices] for k, v in self.arrays.items()}

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for key in sorted(self.arrays):
            array = np.ascontiguousarray(self.arrays[key])
            digest.update(f"{key}:{array.dtype.str}:{array.shape};".encode())
            digest.update(array.data)
        return digest.hexdigest()

    def subset(self, indices) -> Source:
        return ArraySource({k: v[np.asarray(indices)] for k, v in self.arrays.items()})


class Subset(Source):
    """Some examples of another source, by index (a split of one file list)."""

    def __init__(self, parent: Source, indices: np.ndarray):
        self.parent, self.indices = parent, indices

    def __len__(self) -> int:
        return len(self.indices)

    def read(self, index: int) -> Example:
        return self.parent.read(int(self.indices[index]))

    def __getitem__(self, index: int) -> Example:
        return self.parent[int(self.indices[index])]

    def augmented(self, index: int, augment: Augment, rng: np.random.Generator) -> Example:
        return self.parent.augmented(int(self.indices[index]), augment, rng)

    def finish(self, example: Example) -> Example:
        return self.parent.finish(example)

    def origin(self, index: int) -> str:
        return self.parent.origin(int(self.indices[index]))

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.parent.fingerprint().encode())
        digest.update(np.ascontiguousarray(self.indices, np.int64).data)
        return digest.hexdigest()

    def subset(self, indices) -> Source:
        return Subset(self.parent, self.indices[np.asarray(indices)])


class WithArrays(Source):
    """A source with extra per-example fields held in memory (a GAN's fixed noise)."""

    def __init__(self, parent: Source, arrays: Mapping[str, np.ndarray]):
        self.parent, self.arrays = parent, dict(arrays)

    def __len__(self) -> int:
        return len(self.parent)

    def read(self, index: int) -> Example:
        return {**self.parent.read(index), **self._extra(index)}

    def __getitem__(self, index: int) -> Example:
        return {**self.parent[index], **self._extra(index)}

    def _extra(self, index: int) -> Example:
        return {k: v[index] for k, v in self.arrays.items()}

    def finish(self, example: Example) -> Example:
        return self.parent.finish(example)

    def origin(self, index: int) -> str:
        return self.parent.origin(index)

    def fingerprint(self) -> str:
        return hashlib.sha256((self.parent.fingerprint() +
                               ArraySource(self.arrays).fingerprint()).encode()).hexdigest()


class Concatenated(Source):
    """Sources one after another (every split of a data set as one evaluation set)."""

    def __init__(self, parts: Sequence[Source]):
        self.parts = list(parts)
        self.starts = np.cumsum([0, *map(len, self.parts)])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _locate(self, index: int) -> tuple[Source, int]:
        part = int(np.searchsorted(self.starts, index, side="right")) - 1
        return self.parts[part], index - int(self.starts[part])

    def read(self, index: int) -> Example:
        part, i = self._locate(index)
        return part.read(i)

    def __getitem__(self, index: int) -> Example:
        part, i = self._locate(index)
        return part[i]

    def finish(self, example: Example) -> Example:
        return self.parts[0].finish(example)  # the splits of one data set finish alike

    def origin(self, index: int) -> str:
        part, i = self._locate(index)
        return part.origin(i)

    def fingerprint(self) -> str:
        return hashlib.sha256(";".join(p.fingerprint() for p in self.parts).encode()).hexdigest()


class Relabelled(Source):
    """Another source with each "label" mapped through `mapping` (its class index in
    another list of classes, e.g. a pretrained card's)."""

    def __init__(self, parent: Source, mapping: np.ndarray):
        self.parent, self.mapping = parent, np.asarray(mapping)

    def __len__(self) -> int:
        return len(self.parent)

    def _mapped(self, example: Example) -> Example:
        return {**example, "label": self.mapping[example["label"]]}

    def read(self, index: int) -> Example:
        return self._mapped(self.parent.read(index))

    def __getitem__(self, index: int) -> Example:
        return self._mapped(self.parent[index])

    def augmented(self, index: int, augment: Augment, rng: np.random.Generator) -> Example:
        return self._mapped(self.parent.augmented(index, augment, rng))

    def finish(self, example: Example) -> Example:
        return self.parent.finish(example)

    def origin(self, index: int) -> str:
        return self.parent.origin(index)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.parent.fingerprint().encode())
        digest.update(np.ascontiguousarray(self.mapping).data)
        return digest.hexdigest()


Split = Mapping[str, np.ndarray] | Source


def as_source(split: Split) -> Source:
    """A split as a `Source` (a dict of arrays becomes an `ArraySource`)."""
    return split if isinstance(split, Source) else ArraySource(split)


def split_size(split: Split) -> int:
    return len(split) if isinstance(split, Source) else len(next(iter(split.values())))


def with_arrays(split: Split, **arrays: np.ndarray) -> Split:
    """`split` with extra per-example fields (arrays with one row per example)."""
    if isinstance(split, Source):
        return WithArrays(split, arrays)
    return {**split, **arrays}


def files_fingerprint(root: str | Path, names: Iterable[str], *extra: object) -> str:
    """A digest of files' names, sizes and modification times (no file is read), plus
    `extra` settings that change the examples (image size, channels...).

    Missing files count as size -1, so a deleted file changes the digest.
    """
    digest = hashlib.sha256(repr(extra).encode())
    root = str(root)
    for name in names:
        try:
            st = os.stat(os.path.join(root, name))
            digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{name}\0-1\n".encode())
    return digest.hexdigest()


def dataset_fingerprint(splits: Mapping[str, Split]) -> str:
    """One digest of every split (see `Source.fingerprint`)."""
    digest = hashlib.sha256()
    for name in sorted(splits):
        digest.update(f"{name}:{as_source(splits[name]).fingerprint()};".encode())
    return digest.hexdigest()
