"""What only a GPU or TPU can check: a compiled train step placed on it, the bfloat16
policy computing in bfloat16 there, and the convolution taking XLA's own gradient.

Marked `device`: skipped without an accelerator, excluded from the default run;
benchmarks/device_check.sh runs them with `-m device`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from zoo.config import apply_overrides
from zoo.harness.trainer import open_session, train_steps
from zoo.data import loader
from zoo.models import conv
from zoo_tasks.classification import ClassificationTask

pytestmark = pytest.mark.device


def _session(*overrides):
    config = apply_overrides(ClassificationTask.Config.smoke(), ["augment=none", *overrides])
    return open_session(ClassificationTask(config))


def _train(session, steps):
    batches = loader.train_batches(session.data.splits["train"], 32, seed=0, epoch=0)
    outputs = [out for _, (_, out) in zip(range(steps), train_steps(session, batches, 0))]
    return [float(out["loss"]) for out in outputs]


def test_a_compiled_train_step_runs_on_the_accelerator():
    session = _session()
    platforms = {d.platform for x in jax.tree.leaves(session.state) for d in x.devices()}
    assert platforms == {jax.default_backend()} != {"cpu"}
    before = jax.tree.map(np.asarray, jax.tree.leaves(session.state))
    losses = _train(session, 4)
    assert all(np.isfinite(losses))
    after = jax.tree.leaves(session.state)
    assert any(not np.array_equal(a, np.asarray(b)) for a, b in zip(before, after))


def test_bfloat16_computes_low_on_the_accelerator_and_keeps_float32_state():
    session = _session("train.dtype=bfloat16")
    assert "bf16[" in session.steps.train.as_text()
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(session.state)
               if jnp.issubdtype(x.dtype, jnp.floating))
    assert all(np.isfinite(_train(session, 4)))


def test_the_convolution_takes_xlas_own_gradient_here():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((8, 16, 16, 8)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, 8, 16)), jnp.float32)

    def loss(fn):
        return lambda x, k: jnp.sum(fn(x, k, (2, 2), "SAME", dimension_numbers=conv.NHWC) ** 2)

    assert "custom_vjp" not in str(jax.make_jaxpr(loss(conv.conv_general_dilated))(x, k))
    ours = jax.jit(jax.grad(loss(conv.conv_general_dilated), (0, 1)))(x, k)
    theirs = jax.jit(jax.grad(loss(lax.conv_general_dilated), (0, 1)))(x, k)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)  # the same program, so the same numbers
