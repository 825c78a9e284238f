"""Arrays made once and kept in zoo's cache as .npz files."""

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np


def cached_arrays(path: Path, make: Callable[[], Mapping[str, np.ndarray]], *,
                  compressed: bool = False) -> dict[str, np.ndarray]:
    """The arrays stored at `path`; on a miss, `make()`'s, stored first.

    Written to a temporary file and renamed into place, so a killed process never
    leaves a half-written cache.
    """
    if path.exists():
        with np.load(path) as f:
            return dict(f)
    arrays = dict(make())
    tmp = path.with_suffix(".tmp.npz")
    (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
    tmp.replace(path)
    return arrays
