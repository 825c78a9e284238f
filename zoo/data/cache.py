"""Arrays made once and kept in zoo's cache as .npz files.

Making them (generating scenes, faces, OCR lines) can take a minute on a first run, so
it is said on the `zoo.data` logger, which `fit` shows in its log.
"""

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

log = logging.getLogger("zoo.data")


def cached_arrays(path: Path, make: Callable[[], Mapping[str, np.ndarray]], *,
                  compressed: bool = False) -> dict[str, np.ndarray]:
    """The arrays stored at `path`; on a miss, `make()`'s, stored first.

    Written to a temporary file and renamed into place, so a killed process never
    leaves a half-written cache.
    """
    if path.exists():
        with np.load(path) as f:
            return dict(f)
    log.info("making %s (the first time only: cached in %s)", path.name, path.parent)
    t0 = time.perf_counter()
    arrays = dict(make())
    tmp = path.with_suffix(".tmp.npz")
    (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
    tmp.replace(path)
    log.info("made %s: %.1f MB in %.1fs", path.name, path.stat().st_size / 1e6,
             time.perf_counter() - t0)
    return arrays
