"""Checkpoints in a workdir, with orbax-checkpoint and zoo's sha256 manifests.

Two managers: `checkpoints/latest` (the last two saves, for resuming) and
`checkpoints/best` (the best validation epoch, for eval/predict/publish). Each save
holds the train state as a plain nested dict of arrays (stable across NNX versions)
and a small JSON of loop state (step, epoch, early stopping, history). Orbax writes to
a temporary directory and renames it when complete, so a killed save is never taken
for a good one (leftovers are deleted when a store opens). Just before that rename, zoo
adds a manifest of sha256 sums (`zoo.harness.manifest`), checked on every restore.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from zoo.errors import ZooError
from zoo.harness.manifest import DamagedCheckpoint, verify, write_manifest
from zoo.io.weights import by_path
from zoo_hardware import distributed

LATEST, BEST = "latest", "best"
DAMAGED = "damaged"  # where --resume-from-last-good moves checkpoints that fail their manifest


class CheckpointStore:
    """The `latest` and `best` checkpoint managers of one workdir."""

    def __init__(self, workdir: Path):
        self.root = Path(workdir).absolute() / "checkpoints"
        self._saving: dict[str, int] = {}  # manager -> step of its save in flight
        self._managers = {LATEST: self._manager(LATEST, max_to_keep=2),
                          BEST: self._manager(BEST, max_to_keep=1)}

    def _manager(self, which: str, max_to_keep: int) -> ocp.CheckpointManager:
        seal = functools.partial(self._seal, which)
        # In a multi-process run the managers sync processes with barriers named by step;
        # the prefix keeps `latest` and `best` saving the same step from sharing a name.
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True,
            async_options=ocp.AsyncOptions(post_finalization_callback=seal),
            multiprocessing_options=ocp.options.MultiprocessingOptions(
                barrier_sync_key_prefix=which))
        return ocp.CheckpointManager(self.root / which, options=options)

    def _seal(self, which: str) -> None:
        """Orbax's post-finalization callback: writes the manifest before the rename."""
        if not ocp.multihost.is_primary_host(0):
            return
        final = self.directory(which, self._saving[which])
        temporary = final.with_name(final.name + ocp.path.atomicity_types.TMP_DIR_SUFFIX)
        write_manifest(temporary if temporary.is_dir() else final)

    def directory(self, which: str, step: int) -> Path:
        return self.root / which / str(step)

    def steps(self, which: str = LATEST) -> list[int]:
        return sorted(self._managers[which].all_steps())

    def latest_step(self, which: str = LATEST) -> int | None:
        return self._managers[which].latest_step()

    def save(self, which: str, step: int, state: Any, meta: dict) -> None:
        """Starts an asynchronous save of `state` (a pytree of arrays) and `meta` (JSON).

        A step that is already saved (a run replaying steps after a resume) is replaced.
        """
        manager = self._managers[which]
        with self._disk_full(which, step):
            manager.wait_until_finished()  # the previous save's seal reads `_saving`
            if step in manager.all_steps():
                manager.delete(step)
            self._saving[which] = step
            manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

    def restore(self, which: str, target: Any, step: int | None = None, *,
                verified: bool = False) -> tuple[Any, dict]:
        """Restores into the structure, dtypes and shardings of `target`, checking its
        manifest first unless the caller just did (`verified`).

        Raises:
          ZooError: if the checkpoint fails its manifest (naming the file) or does not
            fit `target`.
        """
        manager = self._managers[which]
        step = manager.latest_step() if step is None else step
        directory = self.directory(which, step) if verified else self._verified(which, step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        try:
            restored = manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        except ValueError as e:
            raise ZooError(f"{directory} does not fit this model ({str(e).splitlines()[0]}); "
                           f"was it saved by other code? use a new --workdir") from None
        return restored["state"], restored["meta"]

    def restore_saved(self, which: str, part: str) -> Any:
        """One part (e.g. "model") of the newest `which` checkpoint, verified, as saved:
        its own tree, on this process's first device, so nothing needs building first."""
        directory = self._verified(which, self.latest_step(which)) / "state"
        reader = ocp.PyTreeCheckpointHandler()
        try:
            saved = reader.metadata(directory).tree[part]
            device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            target = {part: jax.tree.map(
                lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), saved)}
            restored = reader.restore(directory, args=ocp.args.PyTreeRestore(
                item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
                partial_restore=True))
        finally:
            reader.close()
        return restored[part]

    def resume(self, target: Any, *, last_good: bool,
               log: Callable[[str], None]) -> tuple[Any, dict] | None:
        """Restores the checkpoint to resume from, verified; None in a fresh workdir.

        By default a damaged `latest` or `best` checkpoint stops the run. With
        `last_good`, damaged checkpoints are moved to `checkpoints/damaged/` and the
        newest good one is used (a `best` one if no `latest` is left).
        """
        if last_good:
            damage = self.damaged()  # verifies every checkpoint
            for found in damage:
                log(f"moved damaged checkpoint aside ({found}) to {self.quarantine(found)}")
            if damage:
                for manager in self._managers.values():
                    manager.reload()
        elif self.steps(BEST):
            self._verified(BEST, self.latest_step(BEST))  # the final test needs it
        which = LATEST if self.steps(LATEST) else BEST
        if not self.steps(which):
            return None
        return self.restore(which, target, verified=last_good or which == BEST)

    def _verified(self, which: str, step: int) -> Path:
        directory = self.directory(which, step)
        try:
            verify(directory)
        except DamagedCheckpoint as e:
            raise ZooError(f"checkpoint {which}/{step} is damaged: {e}; rerun with "
                           f"--resume-from-last-good to fall back to an earlier one") from None
        return directory

    def damaged(self) -> list[DamagedCheckpoint]:
        """Every checkpoint that fails its manifest, newest first."""
        found = []
        for which in (LATEST, BEST):
            for step in reversed(self.steps(which)):
                try:
                    verify(self.directory(which, step))
                except DamagedCheckpoint as e:
                    found.append(e)
        return found

    def quarantine(self, damage: DamagedCheckpoint) -> Path:
        """Moves a damaged checkpoint into `checkpoints/damaged/` (reload the managers after)."""
        name = f"{damage.directory.parent.name}-{damage.directory.name}"
        target = self.root / DAMAGED / name
        if distributed.is_primary():
            target.parent.mkdir(exist_ok=True)
            if target.exists():
                target = target.with_name(f"{target.name}-{time.time_ns()}")
            damage.directory.rename(target)
        distributed.barrier(f"zoo-quarantine-{name}")
        return target

    def wait(self) -> None:
        """Blocks until every pending save is on disk."""
        for which, manager in self._managers.items():
            with self._disk_full(which, self._saving.get(which)):
                manager.wait_until_finished()

    def close(self) -> None:
        for which, manager in self._managers.items():
            with self._disk_full(which, self._saving.get(which)):
                manager.close()

    @contextlib.contextmanager
    def _disk_full(self, which: str, step: int | None) -> Iterator[None]:
        """Turns orbax's (or tensorstore's) out-of-space errors into one line."""
        try:
            yield
        except Exception as e:
            if not is_disk_full(e):
                raise
            self._managers[which].reload()
            good = self.latest_step(which)
            kept = f"checkpoint {which}/{good} is intact" if good is not None else "no checkpoint was lost"
            raise ZooError(f"disk full while saving checkpoint {which}/{step} under {self.root}; "
                           f"{kept}: free some space and rerun the same command to resume") from None


def model_weights(workdir: Path) -> dict[str, Any]:
    """The model of a workdir's best checkpoint, by variable path (`zoo.io.weights`).

    Raises:
      ZooError: no finished epoch yet, or a damaged checkpoint (naming the file).
    """
    store = CheckpointStore(workdir)
    try:
        if store.latest_step(BEST) is None:
            raise ZooError(f"{workdir}: no finished epoch to load yet; let `zoo run` complete "
                           f"at least one epoch")
        return by_path(store.restore_saved(BEST, "model"))
    finally:
        store.close()


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` reports a full disk or quota (OSError, or tensorstore's text)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    return "No space left on device" in text or "Disk quota exceeded" in text
