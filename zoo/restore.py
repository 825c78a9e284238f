"""Loading a trained workdir back for `zoo eval` and `zoo predict`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flax import nnx

from zoo.config import from_dict
from zoo.harness.checkpoints import BEST, CheckpointStore
from zoo.harness.optim import make_run_optimizer
from zoo.harness.steps import inference_view, merge_train_state, split_train_state
from zoo.harness.trainer import Adapter, evaluate, open_session
from zoo.harness.workdir import require_run
from zoo.errors import ZooError
from zoo.registry import get_task
from zoo.task import Task


def task_from_run(workdir: Path, task_name: str | None = None) -> tuple[Task, dict[str, Any]]:
    """The task (with the config it was trained with) and the run record of a workdir."""
    record = require_run(workdir, task_name)
    task_cls = get_task(record["task"])
    return task_cls(from_dict(task_cls.Config, record["config"])), record


def _best_store(workdir: Path) -> CheckpointStore:
    store = CheckpointStore(workdir)
    if store.latest_step(BEST) is None:
        store.close()
        raise ZooError(f"{workdir}: no finished epoch to load yet; let `zoo run` complete "
                       f"at least one epoch")
    return store


def _compressed(workdir: Path, record: dict[str, Any]) -> Adapter | None:
    """The weights and layer edits of a `zoo compress` output (None for a trained run)."""
    if "compressed" not in record:
        return None
    from zoo.compress.pipeline import load_adapter

    return load_adapter(workdir, record["compressed"])


def restore_best(workdir: Path, task_name: str | None = None) -> tuple[Task, nnx.Module, dict[str, Any]]:
    """The task, the best checkpoint's (or compressed) model (training mode) and the run record."""
    task, record = task_from_run(workdir, task_name)
    compressed = _compressed(workdir, record)
    if compressed is not None:
        return task, compressed.build(task, record["info"], nnx.Rngs(0)), record
    model = task.build_model(record["info"], nnx.Rngs(0))
    # The optimizer is rebuilt only to give the checkpoint's tree its exact shape.
    optimizer = task.make_optimizer(model, make_run_optimizer(task.config, 1, 1))
    graphdef, state = split_train_state(model, optimizer)
    store = _best_store(workdir)
    try:
        restored, _ = store.restore(BEST, nnx.to_pure_dict(state))
    finally:
        store.close()
    nnx.replace_by_pure_dict(state, restored)
    model, _ = merge_train_state(graphdef, state)
    return task, model, record


def load_model(workdir: Path, task_name: str | None = None) -> tuple[Task, nnx.Module, dict[str, Any]]:
    """The best checkpoint's model, ready for prediction, with its data-set info."""
    task, model, record = restore_best(workdir, task_name)
    return task, inference_view(model), record["info"]


def evaluate_workdir(workdir: Path, task_name: str | None = None, *, split: str = "test",
                     device: str = "auto", mesh: str | None = None) -> dict[str, Any]:
    """Metrics of the best checkpoint (or compressed model) on `split`, on freshly loaded data.

    The checkpoint restores onto `mesh`, whatever mesh it was saved from.
    """
    task, record = task_from_run(workdir, task_name)
    compressed = _compressed(workdir, record)
    session = open_session(task, device=device, mesh=mesh, training=False, adapter=compressed)
    if compressed is not None:
        return evaluate(session, split)
    store = _best_store(workdir)
    try:
        restored, _ = store.restore(BEST, nnx.to_pure_dict(session.state))
    finally:
        store.close()
    nnx.replace_by_pure_dict(session.state, restored)
    return evaluate(session, split)
