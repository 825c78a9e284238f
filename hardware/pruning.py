"""Magnitude pruning: masks, a gradual sparsity schedule, and an optimizer that keeps them.

Every function takes and returns trees of arrays (a model's parameters or their masks),
so it works for any model. Only weight matrices and convolution kernels (arrays of rank
two or more) are pruned; biases and norm scales are few and stay dense.

The masks live in the optimizer state (`masked`), so they are checkpointed with a run,
follow it through resume, and are applied inside the one compiled train step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

Scope = Literal["global", "layer"]
SCOPES: tuple[str, ...] = ("global", "layer")


def prunable(leaf: Any) -> bool:
    """Weight matrices and kernels (rank >= 2) are pruned and quantized; vectors are not."""
    return getattr(leaf, "ndim", 0) >= 2


def magnitude_masks(params: Any, sparsity: jax.Array | float, *, scope: Scope = "global",
                    per_layer: Mapping[str, float] | None = None) -> Any:
    """Keeps the largest-magnitude weights: True where a weight survives.

    Args:
      params: a tree of arrays. Leaves that are not `prunable` get a scalar True.
      sparsity: the fraction of prunable weights to remove, in [0, 1).
      scope: "global" ranks all prunable weights together (layers end up with different
        sparsities: large, redundant layers lose most); "layer" prunes each to `sparsity`.
      per_layer: each layer's own target, by `leaf_names` name: a layer is then pruned to
        `sparsity * target` (`sparsity` is the ramp's fraction, 1 at the end) alone.

    Returns:
      A tree of boolean masks with the structure of `params`. Jit-compatible.
    """
    leaves = [x for x in jax.tree.leaves(params) if prunable(x)]
    if scope == "global" and leaves:
        threshold = _threshold(jnp.concatenate([jnp.abs(x).ravel() for x in leaves]), sparsity)
        return jax.tree.map(lambda x: jnp.abs(x) > threshold if prunable(x) else jnp.array(True),
                            params)
    targets = jax.tree.unflatten(jax.tree.structure(params), [
        1.0 if per_layer is None else per_layer.get(name, 0.0) for name in leaf_names(params)])
    return jax.tree.map(lambda x, t: jnp.abs(x) > _threshold(jnp.abs(x).ravel(), sparsity * t)
                        if prunable(x) else jnp.array(True), params, targets)


def _threshold(magnitudes: jax.Array, sparsity: jax.Array | float) -> jax.Array:
    """The magnitude at or below which the `sparsity` fraction of `magnitudes` lies."""
    k = jnp.floor(sparsity * magnitudes.size).astype(jnp.int32)
    ranked = jnp.sort(magnitudes)
    return jnp.where(k > 0, ranked[jnp.maximum(k - 1, 0)], -1.0)


def leaf_names(tree: Any) -> list[str]:
    """Each leaf's path as "conv1/kernel" (dict keys and attribute names joined by "/")."""
    def name(path) -> str:
        keys = (getattr(k, "key", getattr(k, "name", None)) for k in path)
        return "/".join(str(k) for k in keys if k is not None and str(k) != "value")
    return [name(path) for path, _ in jax.tree_util.tree_leaves_with_path(tree)]


def apply_masks(params: Any, masks: Any) -> Any:
    """Zeroes the pruned weights."""
    return jax.tree.map(lambda x, m: jnp.where(m, x, jnp.zeros_like(x)), params, masks)


def sparsity(params: Any) -> float:
    """The fraction of prunable weights that are exactly zero."""
    leaves = [x for x in jax.tree.leaves(params) if prunable(x)]
    total = sum(x.size for x in leaves)
    return float(sum(jnp.sum(x == 0) for x in leaves) / max(total, 1))


def gradual_schedule(target: float, *, end_step: int, every: int = 1) -> Callable[[jax.Array], jax.Array]:
    """Zhu & Gupta's cubic schedule: sparsity rises fast, then levels off at `target`.

    s(t) = target * (1 - (1 - t / end_step)^3), held constant between pruning steps
    (`every` steps apart) and at `target` from `end_step` on, so the network has time
    to recover after each cut and after the last.
    """
    end_step = max(int(end_step), 1)

    def schedule(step: jax.Array) -> jax.Array:
        t = jnp.minimum((step // every) * every, end_step) / end_step
        return target * (1.0 - (1.0 - t) ** 3)

    return schedule


class MaskedState(NamedTuple):
    """`masked`'s state: one mask per parameter leaf, the update count, the wrapped state."""

    masks: list
    count: jax.Array
    inner: Any


def masked(inner: optax.GradientTransformation, *,
           schedule: Callable[[jax.Array], jax.Array] | None = None, scope: Scope = "global",
           every: int = 1, per_layer: Mapping[str, float] | None = None
           ) -> optax.GradientTransformation:
    """Wraps an optimizer so pruned weights are zero after every update.

    The masks start as `params != 0` (the zeros of an already-pruned model stay zero).
    With a `schedule`, every `every` updates the masks are recomputed by magnitude at the
    scheduled sparsity (monotonically: a pruned weight never returns); with `per_layer`
    (a target per leaf, named by its path as in `leaf_names`) the schedule gives the
    ramp's fraction and each leaf goes to its own target. Gradients of
    pruned weights are masked before `inner` sees them, so its moments stay clean, and
    the returned update sends each pruned weight exactly to zero.

    Masks are kept as a list in the order of `jax.tree.leaves(params)`, so the wrapper
    works whatever container type the optimizer hands it the parameters in.
    """

    def init(params):
        masks = [x != 0 if prunable(x) else jnp.array(True) for x in jax.tree.leaves(params)]
        return MaskedState(masks, jnp.zeros((), jnp.int32), inner.init(params))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("pruning.masked needs the parameters in update()")
        leaves = jax.tree.leaves(params)
        masks = state.masks
        if schedule is not None:
            def reprune(masks):
                kept = jax.tree.unflatten(jax.tree.structure(params), apply_masks(leaves, masks))
                fresh = magnitude_masks(kept, schedule(state.count), scope=scope,
                                        per_layer=per_layer)
                return jax.tree.map(jnp.logical_and, masks, jax.tree.leaves(fresh))

            masks = jax.lax.cond(state.count % every == 0, reprune, lambda m: m, masks)
        grads, treedef = jax.tree.flatten(updates)
        updates = treedef.unflatten(apply_masks(grads, masks))
        updates, inner_state = inner.update(updates, state.inner, params)
        steps = [jnp.where(m, u, -p) for u, p, m in zip(jax.tree.leaves(updates), leaves, masks)]
        return treedef.unflatten(steps), MaskedState(masks, state.count + 1, inner_state)

    return optax.GradientTransformation(init, update)
