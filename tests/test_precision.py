"""The mixed-precision policy: low-precision compute, float32 masters, float16 loss scaling."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from zoo.config import apply_overrides
from zoo.errors import ZooError
from zoo.harness.trainer import fit, open_session
from zoo_hardware import precision

from helpers import latest_params


def _task(spirals, *overrides):
    return spirals(apply_overrides(spirals.Config(), ["points=512", "train.epochs=2", *overrides]))


def test_unknown_dtype_suggests_the_right_one():
    with pytest.raises(ZooError, match="did you mean 'bfloat16'"):
        precision.get_policy("bfloat61")


def test_loss_scale_skips_overflowing_steps_and_adapts():
    tx = precision.dynamic_loss_scale(optax.sgd(0.5), initial_scale=8.0, growth_interval=2)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    assert precision.loss_scale(state) == 8.0
    # An overflow: no update, inner state kept, scale halved.
    updates, state = tx.update({"w": jnp.array([1.0, jnp.inf, 1.0])}, state, params)
    np.testing.assert_array_equal(updates["w"], 0.0)
    assert precision.loss_scale(state) == 4.0
    # Finite gradients of a loss scaled by 4 are unscaled before the inner optimizer.
    updates, state = tx.update({"w": jnp.full(3, 4.0)}, state, params)
    np.testing.assert_allclose(updates["w"], -0.5)
    assert precision.loss_scale(state) == 4.0
    _, state = tx.update({"w": jnp.full(3, 4.0)}, state, params)
    assert precision.loss_scale(state) == 8.0  # two finite steps in a row: it grows


def test_a_model_that_ignores_the_dtype_is_refused():
    policy = precision.get_policy("bfloat16")
    with pytest.raises(ZooError, match="dtype=self.compute_dtype"):
        precision.check_model(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), policy, "mine")
    precision.check_model(nnx.Linear(2, 2, dtype=jnp.bfloat16, rngs=nnx.Rngs(0)), policy, "mine")


def test_bfloat16_computes_low_and_keeps_float32_state(spirals):
    session = open_session(_task(spirals, "train.dtype=bfloat16"))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(session.state)
               if jnp.issubdtype(x.dtype, jnp.floating))
    assert "bf16[" in session.steps.train.as_text()  # the matmuls run in bfloat16


def test_mixed_precision_runs_learn_like_float32(spirals, tmp_path):
    results = {}
    for dtype in ("float32", "bfloat16", "float16"):
        results[dtype] = fit(_task(spirals, f"train.dtype={dtype}"), tmp_path / dtype, quiet=True)
    params = {d: latest_params(tmp_path / d) for d in results}
    for dtype in ("bfloat16", "float16"):
        assert all(p.dtype == np.float32 for p in params[dtype].values())
        for key in params["float32"]:  # close to float32, but not bit-equal
            np.testing.assert_allclose(params[dtype][key], params["float32"][key], atol=0.05)
        assert abs(results[dtype]["metrics"]["accuracy"]
                   - results["float32"]["metrics"]["accuracy"]) < 0.1
    assert any(not np.array_equal(params["bfloat16"][k], params["float32"][k])
               for k in params["float32"])
