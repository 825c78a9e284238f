"""A run's expected failures as one-line errors that name the checkpoint kept.

A non-finite step and a full disk are not bugs to show a traceback for: the user needs
the step, what was kept, and what to do next.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator
from pathlib import Path

from zoo.errors import ZooError
from zoo.harness.checkpoints import CheckpointStore, is_disk_full
from zoo.harness.scalars import NonFiniteStep

_NAN_FIXES = ("lower the learning rate, clip gradients (--set optimizer.grad_clip_norm=1), "
              "rerun with --on-nan skip to drop such steps, or with --debug-nans to name "
              "the operation")


@contextlib.contextmanager
def explained(store: CheckpointStore) -> Iterator[None]:
    """Re-raises a non-finite step or a full disk as a `ZooError`."""
    try:
        yield
    except NonFiniteStep as e:
        raise ZooError(f"{e}; stopped, {_kept(store)}: {_NAN_FIXES}") from None
    except OSError as e:
        if not is_disk_full(e):
            raise
        raise ZooError(f"disk full writing {e.filename or f'under {store.root.parent}'}; "
                       f"{_kept(store)}: free some space and rerun the same command to "
                       f"resume") from None


def _kept(store: CheckpointStore) -> str:
    """The newest checkpoint that verifies, after the saves in flight have landed (or
    failed: a failed save is not named as intact)."""
    try:
        store.wait()
    except ZooError:
        pass  # the failure being explained, or another one: `kept` checks what is on disk
    return store.kept()


def nan_origin(error: FloatingPointError) -> str:
    """`jax_debug_nans`'s message plus the innermost source line outside JAX libraries."""
    library = ("/jax/", "/jaxlib/", "/flax/", "/optax/", "/zoo/harness/")
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not any(part in Path(f.filename).as_posix() for part in library)]
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{error}{where} (--debug-nans)"
