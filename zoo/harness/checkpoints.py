"""Checkpoints in a workdir, with orbax-checkpoint and zoo's sha256 manifests.

Two managers: `checkpoints/latest` (the last two saves, for resuming) and
`checkpoints/best` (the best validation epoch, for eval/predict/publish). Each save
holds the train state as a plain nested dict of arrays (stable across NNX versions)
and a small JSON of loop state (step, epoch, early stopping, history). Orbax writes to
a temporary directory and renames it when complete, so a killed save is never taken
for a good one (leftovers are deleted when a writing store opens). Just before that
rename, zoo adds a manifest of sha256 sums (`zoo.harness.manifest`), checked on every
restore.

Every failure of the storage (full, read-only, vanished, a file where a folder must be)
is one `ZooError` naming the newest checkpoint that still verifies, raised in the
calling thread: orbax creates save directories synchronously here, because its
asynchronous creation leaves threads waiting 20 minutes for a directory that failed.
Readers (`zoo eval`, `predict` while a run writes) open the store read-only, never
clean up, and retry when the run's clean-up removes the checkpoint they were reading.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
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
    """The `latest` and `best` checkpoint managers of one workdir.

    Args:
      writable: False for readers: nothing is created or cleaned up (a run may be
        writing the same folders).
    """

    def __init__(self, workdir: Path, *, writable: bool = True):
        self.root = Path(workdir).absolute() / "checkpoints"
        self.writable = writable
        self._saving: dict[str, int] = {}  # manager -> step of its save in flight
        self._managers: dict[str, ocp.CheckpointManager] = {}
        try:
            for which, keep in ((LATEST, 2), (BEST, 1)):
                with self._failure("open", which):
                    self._managers[which] = self._manager(which, max_to_keep=keep)
        except ZooError:
            for manager in self._managers.values():
                manager.close()
            raise

    def _manager(self, which: str, max_to_keep: int) -> ocp.CheckpointManager:
        for folder in (self.root, self.root / which):
            if folder.exists() and not folder.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(folder))
        seal = functools.partial(self._seal, which)
        # In a multi-process run the managers sync processes with barriers named by step;
        # the prefix keeps `latest` and `best` saving the same step from sharing a name.
        if not self.writable:  # what orbax would otherwise warn that it sets
            max_to_keep, interval = None, {"save_interval_steps": 0}
        else:
            interval = {}
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=self.writable, read_only=not self.writable,
            **interval,
            cleanup_tmp_directories=self.writable,
            async_options=ocp.AsyncOptions(post_finalization_callback=seal,
                                           create_directories_asynchronously=False),
            multiprocessing_options=ocp.options.MultiprocessingOptions(
                barrier_sync_key_prefix=which))
        with _quiet_orbax(not self.writable):  # "Given directory is read only": we know
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
        with self._failure("save", which, step):
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

        A checkpoint whose optimizer state is nested differently (gradient clipping
        turned on or off on resume adds or removes a stateless stage) but holds the
        same arrays in the same order is restored into `target`'s structure.

        Raises:
          ZooError: if the checkpoint fails its manifest (naming the file), does not
            fit `target`, or cannot be read.
        """
        manager = self._managers[which]
        step = manager.latest_step() if step is None else step
        directory = self.directory(which, step) if verified else self._verified(which, step)
        with self._failure("read", which, step):
            saved = _int_keys(_saved_tree(directory / "state"))
            abstract = _abstract_target(saved, target, directory)
            try:
                restored = manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
            except ValueError as e:
                raise ZooError(f"{directory} does not fit this model ({str(e).splitlines()[0]}); "
                               f"was it saved by other code? use a new --workdir") from None
        state = jax.tree.unflatten(jax.tree.structure(target), jax.tree.leaves(restored["state"]))
        return state, restored["meta"]

    def restore_saved(self, which: str, part: str) -> Any:
        """One part (e.g. "model") of the newest `which` checkpoint, verified, as saved:
        its own tree, on this process's first device, so nothing needs building first."""
        step = self.latest_step(which)
        directory = self._verified(which, step) / "state"
        with self._failure("read", which, step):
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
        except OSError as e:
            raise ZooError(f"cannot read checkpoint {which}/{step} ({_os_error(e)}); check "
                           f"the folder {directory}") from None
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
            which, step = damage.directory.parent.name, int(damage.directory.name)
            with self._failure("move aside", which, step):
                target.parent.mkdir(exist_ok=True)
                if target.exists():
                    target = target.with_name(f"{target.name}-{time.time_ns()}")
                damage.directory.rename(target)
        distributed.barrier(f"zoo-quarantine-{name}")
        return target

    def wait(self) -> None:
        """Blocks until every pending save is on disk."""
        for which, manager in self._managers.items():
            with self._failure("save", which, self._saving.get(which)):
                manager.wait_until_finished()

    def close(self) -> None:
        for which, manager in self._managers.items():
            with self._failure("save", which, self._saving.get(which)):
                manager.close()

    def intact(self, which: str = LATEST) -> int | None:
        """The newest step of `which` on disk that passes its manifest (None if none does)."""
        try:
            steps = sorted((int(p.name) for p in (self.root / which).iterdir() if p.name.isdigit()),
                           reverse=True)
        except OSError:
            return None
        for step in steps:
            try:
                verify(self.directory(which, step))
                return step
            except (DamagedCheckpoint, OSError):
                continue
        return None

    def kept(self) -> str:
        """What a failed run leaves to resume from, in words, checked against manifests."""
        step = self.intact(LATEST)
        if step is not None:
            return f"checkpoint {LATEST}/{step} is intact"
        best = self.intact(BEST)
        if best is not None:
            return f"checkpoint {BEST}/{best} is intact"
        return f"no intact checkpoint is left under {self.root}"

    @contextlib.contextmanager
    def _failure(self, action: str, which: str, step: int | None = None) -> Iterator[None]:
        """Turns a storage failure (orbax's, tensorstore's or the OS's) into one line
        naming the checkpoint that is intact."""
        try:
            yield
        except ZooError:
            raise
        except Exception as e:
            what = f"checkpoint {which}/{step}" if step is not None else f"checkpoints/{which}"
            if is_disk_full(e):
                raise ZooError(f"disk full while saving {what} under {self.root}; {self.kept()}: "
                               f"free some space and rerun the same command to resume") from None
            raise ZooError(f"cannot {action} {what} ({_os_error(e)}); {self.kept()}: make "
                           f"{self.root} a writable folder again and rerun the same command "
                           f"to resume") from None


def _saved_tree(directory: Path) -> Any:
    """The tree of array metadata a checkpoint's `state` item was saved with."""
    reader = ocp.PyTreeCheckpointHandler()
    try:
        return reader.metadata(directory).tree
    finally:
        reader.close()


def _int_keys(tree: Any) -> Any:
    """Orbax's metadata tree as plain dicts, sequence indices back to ints: saved order."""
    tree = getattr(tree, "tree", tree)
    if isinstance(tree, dict):
        return {int(k) if isinstance(k, str) and k.isdigit() else k: _int_keys(v)
                for k, v in tree.items()}
    return tree


def _abstract_target(saved: Any, target: Any, directory: Path) -> Any:
    """What to restore: `target`'s shapes and shardings, in the saved structure.

    The saved structure may differ from `target`'s only outside the model (stateless
    optimizer stages added or removed): the arrays must match one to one, in order.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    if jax.tree.structure(saved) == jax.tree.structure(target):
        return abstract
    old, new = jax.tree.leaves(saved), jax.tree.leaves(abstract)
    same_model = (not isinstance(saved, dict) or "model" not in saved or
                  jax.tree.structure(saved["model"]) == jax.tree.structure(target["model"]))
    if not same_model or len(old) != len(new) or any(
            tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype for a, b in zip(old, new)):
        raise ZooError(f"{directory} does not fit this model (its arrays differ); was it "
                       f"saved by other code? use a new --workdir")
    return jax.tree.unflatten(jax.tree.structure(saved), new)


def model_weights(workdir: Path, attempts: int = 3) -> dict[str, Any]:
    """The model of a workdir's best checkpoint, by variable path (`zoo.io.weights`).

    Safe while a run writes the workdir: the store is opened read-only, and a
    checkpoint removed by the run's clean-up while being read is retried with the new
    best one.

    Raises:
      ZooError: no finished epoch yet, or a damaged checkpoint (naming the file).
    """
    for attempt in range(attempts):
        store = CheckpointStore(workdir, writable=False)
        try:
            step = store.latest_step(BEST)
            if step is None:
                raise ZooError(f"{workdir}: no finished epoch to load yet; let `zoo run` "
                               f"complete at least one epoch")
            return by_path(store.restore_saved(BEST, "model"))
        except ZooError:
            if attempt + 1 == attempts or store.directory(BEST, step).is_dir():
                raise
        finally:
            store.close()
    raise AssertionError("unreachable")


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` reports a full disk or quota (OSError, or tensorstore's text)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    return "No space left on device" in text or "Disk quota exceeded" in text


def _os_error(error: BaseException) -> str:
    """An I/O error in a few words: the OS's reason and the file, else the first line."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    first = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first[:200]}" if first else type(error).__name__


@contextlib.contextmanager
def _quiet_orbax(quiet: bool):
    """Orbax's absl warnings about a read-only manager off: a reader asked for it."""
    logger = logging.getLogger("absl")
    level = logger.level
    if quiet:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
