"""Mixed precision as one policy: compute in a low-precision dtype, keep float32 masters.

Layers take the policy's `compute_dtype` (flax NNX layers cast their float32 parameters
and inputs to it in the forward pass), so gradients and optimizer state stay float32.
float16's narrow exponent lets small gradients underflow to zero, so a float16 policy
also scales the loss up before differentiating: `dynamic_loss_scale` is an optax
transformation that unscales the gradients, skips the update of a step whose gradients
overflowed, and adapts the scale (the scheme of Micikevicius et al., 2018).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from zoo.errors import ZooError, unknown

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class Policy:
    """Which dtype computes and which one stores.

    Attributes:
      name: "float32", "bfloat16" or "float16".
      compute_dtype: the dtype of activations and matmuls.
      param_dtype: the dtype of parameters and optimizer state (always float32).
    """

    name: str
    compute_dtype: Any
    param_dtype: Any = jnp.float32

    @property
    def loss_scaling(self) -> bool:
        return self.compute_dtype == jnp.float16

    def wrap_optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
        """`tx`, with dynamic loss scaling around it where the compute dtype needs it."""
        return dynamic_loss_scale(tx) if self.loss_scaling else tx


def get_policy(name: str) -> Policy:
    """The policy called `name` (a key of `DTYPES`)."""
    if name not in DTYPES:
        raise unknown("dtype", name, DTYPES)
    return Policy(name, DTYPES[name])


def check_model(model: Any, policy: Policy, task_name: str) -> None:
    """Refuses a low-precision policy for a model none of whose layers took its dtype.

    Raises:
      ZooError: naming the task, so `--dtype` never silently changes nothing.
    """
    if policy.compute_dtype == jnp.float32:
        return
    wanted = jnp.dtype(policy.compute_dtype)
    dtypes = {getattr(m, "dtype", None) for _, m in nnx.iter_modules(model)}
    if wanted not in {jnp.dtype(d) for d in dtypes if d is not None}:
        raise ZooError(f"task {task_name!r} builds its model in float32 only, so --dtype "
                       f"{policy.name} would change nothing; its build_model must pass "
                       f"dtype=self.compute_dtype to the layers")


class LossScaleState(NamedTuple):
    """The current loss scale, finite steps since it last changed, and the inner state."""

    scale: jax.Array
    good_steps: jax.Array
    inner_state: Any


def dynamic_loss_scale(inner: optax.GradientTransformation, *, initial_scale: float = 2.0**15,
                       growth_interval: int = 2000, factor: float = 2.0
                       ) -> optax.GradientTransformation:
    """Runs `inner` on gradients of a loss that was multiplied by the current scale.

    Gradients are divided by the scale. If any is not finite, the update is zero, the
    inner state is kept and the scale is divided by `factor`; after `growth_interval`
    finite steps in a row it is multiplied by `factor`.

    Args:
      inner: the optimizer proper.
      initial_scale: the first scale (2**15 leaves room below float16's maximum, 65504).
      growth_interval: finite steps before the scale grows.
      factor: how much the scale grows or shrinks.
    """

    def init(params):
        return LossScaleState(jnp.float32(initial_scale), jnp.int32(0), inner.init(params))

    def update(grads, state, params=None):
        grads = jax.tree.map(lambda g: g.astype(jnp.float32) / state.scale, grads)
        finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        safe = jax.tree.map(lambda g: jnp.where(finite, g, 0.0), grads)
        updates, inner_state = inner.update(safe, state.inner_state, params)
        updates = jax.tree.map(lambda u: jnp.where(finite, u, jnp.zeros_like(u)), updates)
        inner_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                                   inner_state, state.inner_state)
        grow = finite & (state.good_steps + 1 >= growth_interval)
        scale = jnp.where(finite, jnp.where(grow, state.scale * factor, state.scale),
                          jnp.maximum(state.scale / factor, 1.0))
        good_steps = jnp.where(finite & ~grow, state.good_steps + 1, 0)
        return updates, LossScaleState(scale, good_steps, inner_state)

    return optax.GradientTransformation(init, update)


def loss_scale(opt_state: Any) -> jax.Array | float:
    """The loss scale inside an optimizer state, or 1.0 where there is none.

    Accepts an optax state or an `nnx.Optimizer`, whose `opt_state` wraps the arrays.
    """
    opt_state = getattr(opt_state, "opt_state", opt_state)
    found = [s for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, LossScaleState))
             if isinstance(s, LossScaleState)]
    if not found:
        return 1.0
    scale = found[0].scale
    return scale[...] if not isinstance(scale, (jax.Array, np.ndarray)) else scale
