"""Every registered task honours the Task contract: build, step, evaluate, checkpoint.

Parametrized over the whole registry (built-ins come through their entry points), so a
new task plugin is checked the moment it is registered.
"""

import jax
import numpy as np
import pytest
from flax import nnx

from zoo import registry
from zoo.data import loader
from zoo.harness.checkpoints import LATEST, CheckpointStore
from zoo.harness.trainer import evaluate, open_session
from zoo_hardware import placement

from helpers import EXAMPLE_PLUGIN

registry.load_plugin_file(EXAMPLE_PLUGIN)  # third-party example, held to the same contract
TASKS = registry.task_names()


@pytest.fixture(scope="module", params=TASKS)
def session(request):
    task_cls = registry.get_task(request.param)
    return open_session(task_cls(task_cls.Config.smoke()))


def test_train_steps_give_finite_scalars_and_change_parameters(session):
    cfg = session.task.config
    batches = loader.train_batches(session.data.splits["train"], cfg.train.batch_size,
                                   seed=0, epoch=0)
    before = jax.tree.map(np.asarray, nnx.to_pure_dict(session.state)["model"])
    for step in range(2):  # step 0 may have a zero learning rate (warm-up)
        batch = placement.put_batch(next(batches), session.mesh)
        session.state, out = session.steps.train(session.state, batch, np.int32(step))
    out = jax.device_get(out)
    assert "loss" in out or any("loss" in k for k in out)
    assert all(np.isfinite(v) for v in out.values()), out
    after = jax.tree.map(np.asarray, nnx.to_pure_dict(session.state)["model"])
    changed = jax.tree.leaves(jax.tree.map(lambda a, b: not np.array_equal(a, b), before, after))
    assert any(changed)


def test_evaluate_reports_the_primary_metric(session):
    metrics = evaluate(session, "val")
    assert session.task.metric in metrics
    assert np.isfinite(metrics[session.task.metric])


def test_checkpoint_round_trip(session, tmp_path):
    pure = nnx.to_pure_dict(session.state)
    store = CheckpointStore(tmp_path)
    store.save(LATEST, 7, pure, {"step": 7})
    store.wait()
    zeros = jax.tree.map(lambda x: jax.numpy.zeros_like(x), pure)
    restored, meta = store.restore(LATEST, zeros)
    store.close()
    assert meta == {"step": 7}
    same = jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)), pure, restored)
    assert all(jax.tree.leaves(same))
