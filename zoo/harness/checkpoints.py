"""Checkpoints in a workdir, with orbax-checkpoint.

Two managers: `checkpoints/latest` (the last two saves, for resuming) and
`checkpoints/best` (the best validation epoch, for eval/predict/publish). Each save
holds the train state as a plain nested dict of arrays (stable across NNX versions)
and a small JSON of loop state (step, epoch, early stopping, history). Orbax writes to
a temporary directory and renames it when complete, so a killed save is never taken
for a good one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

LATEST, BEST = "latest", "best"


class CheckpointStore:
    """The `latest` and `best` checkpoint managers of one workdir."""

    def __init__(self, workdir: Path):
        root = Path(workdir).absolute() / "checkpoints"
        self._managers = {
            LATEST: _manager(root, LATEST, max_to_keep=2),
            BEST: _manager(root, BEST, max_to_keep=1),
        }

    def latest_step(self, which: str = LATEST) -> int | None:
        return self._managers[which].latest_step()

    def save(self, which: str, step: int, state: Any, meta: dict) -> None:
        """Starts an asynchronous save of `state` (a pytree of arrays) and `meta` (JSON)."""
        self._managers[which].save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

    def restore(self, which: str, target: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restores into the structure, dtypes and shardings of `target`."""
        manager = self._managers[which]
        step = manager.latest_step() if step is None else step
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        return restored["state"], restored["meta"]

    def wait(self) -> None:
        """Blocks until every pending save is on disk."""
        for manager in self._managers.values():
            manager.wait_until_finished()

    def close(self) -> None:
        for manager in self._managers.values():
            manager.close()


def _manager(root: Path, name: str, max_to_keep: int) -> ocp.CheckpointManager:
    # In a multi-process run the managers sync processes with barriers named by step;
    # the prefix keeps `latest` and `best` saving the same step from sharing a name.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True,
        multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=name))
    return ocp.CheckpointManager(root / name, options=options)
