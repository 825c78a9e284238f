"""Conformance checks for task plugins: the checks zoo runs on its own tasks.

A plugin's test suite can hold its task to the same contract as the built-ins:

    import zoo.testing

    def test_my_task_honours_the_contract(tmp_path):
        with zoo.testing.registered(MyTask):  # or the plugin file's path
            zoo.testing.check_task("mytask", tmp_path)

Each check builds on the task's `Config.smoke()` session (tiny data, one device mesh
of every local device), takes seconds, and fails with an `AssertionError` that says
what broke.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from zoo import registry
from zoo.harness.checkpoints import LATEST, CheckpointStore
from zoo.harness.steps import inference_view, merge_train_state
from zoo.harness.trainer import Session, evaluate, open_session
from zoo.predictions import Result
from zoo.task import Task
from zoo_hardware import placement

__all__ = ["check_checkpoint_round_trip", "check_evaluate", "check_predict", "check_predictions",
           "check_task", "check_train_steps", "registered", "smoke_session"]


@contextlib.contextmanager
def registered(*plugins: type[Task] | str | Path) -> Iterator[None]:
    """Registers task classes (or imports `--plugin` files) for the block only.

    Registering a class that is already registered (e.g. by its own entry point) is a
    no-op, so the same test runs before and after the plugin is installed.
    """
    with registry.temporary_registry():
        for plugin in plugins:
            if isinstance(plugin, type):
                registry.register_task()(plugin)
            else:
                registry.load_plugin_file(plugin)
        yield


def smoke_session(task: str | type[Task]) -> Session:
    """A training session of the task's smoke config (`Config.smoke()`), compiled."""
    task_cls = registry.get_task(task) if isinstance(task, str) else task
    return open_session(task_cls(task_cls.Config.smoke()))


def check_train_steps(session: Session, steps: int = 2) -> None:
    """Train steps return a loss and finite scalars, and change the model's parameters.

    Two steps by default: the first may have a zero learning rate (warm-up).
    """
    cfg = session.task.config.train
    batches = session.inputs.train(cfg.batch_size, epoch=0)  # at the shapes compiled for
    before = jax.tree.map(np.asarray, nnx.to_pure_dict(session.state)["model"])
    out = {}
    for step in range(steps):
        batch = placement.put_batch(next(batches), session.mesh)
        session.state, out = session.steps.train(session.state, batch, np.int32(step))
    out = jax.device_get(out)
    _expect(any("loss" in k for k in out), f"train_step returned no loss: {sorted(out)}")
    bad = {k: v for k, v in out.items() if not np.all(np.isfinite(v))}
    _expect(not bad, f"train_step returned non-finite scalars: {bad}")
    after = jax.tree.map(np.asarray, nnx.to_pure_dict(session.state)["model"])
    changed = jax.tree.leaves(jax.tree.map(lambda a, b: not np.array_equal(a, b), before, after))
    _expect(any(changed), f"{steps} train steps left every model variable unchanged")


def check_evaluate(session: Session) -> None:
    """Evaluating the validation split reports the task's primary metric, finite."""
    metrics = evaluate(session, "val")
    metric = session.task.metric
    _expect(metric in metrics, f"evaluation reports {sorted(metrics)}, not the task's "
                               f"primary metric {metric!r}")
    _expect(np.isfinite(metrics[metric]), f"evaluation gave {metric}={metrics[metric]}")


def check_checkpoint_round_trip(session: Session, directory: str | Path) -> None:
    """The train state saves to checkpoints in `directory` and restores bit for bit."""
    pure = nnx.to_pure_dict(session.state)
    store = CheckpointStore(Path(directory))
    try:
        store.save(LATEST, 7, pure, {"step": 7})
        store.wait()
        zeros = jax.tree.map(jax.numpy.zeros_like, pure)
        restored, meta = store.restore(LATEST, zeros)
    finally:
        store.close()
    _expect(meta == {"step": 7}, f"checkpoint metadata came back as {meta}")
    same = jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)), pure, restored)
    _expect(all(jax.tree.leaves(same)), "a restored checkpoint differs from the saved state")


def check_predict(session: Session) -> None:
    """A task with a predict (`prepare`) returns one typed, JSON-able result per input,
    the same for an input alone as inside a padded batch of several."""
    model = inference_view(merge_train_state(session.graphdef, session.state)[0])
    check_predictions(session.task, model, session.data.info)


def check_predictions(task: Task, model: nnx.Module, info: Mapping[str, Any]) -> None:
    """`check_predict` for a model in hand (a trained or restored one, in inference mode)."""
    if type(task).prepare is Task.prepare:
        return
    example = task.example_input(info)
    alone = task.predict(model, info, example[:1])
    several = task.predict(model, info, example[:1] * 3)
    _expect(len(alone) == 1 and len(several) == 3,
            f"predict gave {len(alone)} and {len(several)} results for 1 and 3 inputs")
    expected = task.Result or Result
    _expect(all(isinstance(r, expected) for r in alone + several),
            f"predict returned {type(alone[0]).__name__}, not {expected.__name__}")
    answers = [json.dumps(r.to_json(), sort_keys=True) for r in alone + several]
    _expect(len(set(answers)) == 1, "an input's result changes with the batch around it "
                                    "(predict's padding leaks into real rows)")


def check_task(task: str | type[Task], directory: str | Path) -> None:
    """Every check above on one smoke session; checkpoints go to `directory`."""
    session = smoke_session(task)
    check_train_steps(session)
    check_evaluate(session)
    check_checkpoint_round_trip(session, directory)
    check_predict(session)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)
