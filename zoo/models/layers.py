"""Small building blocks shared by the model families."""

from collections.abc import Sequence

import jax
import jax.numpy as jnp


def max_pool(x: jax.Array, window: Sequence[int]) -> jax.Array:
    """Non-overlapping (h, w) max pooling, stride = window, NHWC (odd edges dropped).

    Written as reshape-then-max rather than `nnx.max_pool`: the gradient of
    `lax.reduce_window` lowers to select-and-scatter, which XLA's CPU backend runs about
    4x slower (see benchmarks/results.md); this form's gradient is a cheap compare.
    """
    n, h, w, c = x.shape
    ph, pw = window
    x = x[:, : h // ph * ph, : w // pw * pw, :]
    return jnp.max(x.reshape(n, h // ph, ph, w // pw, pw, c), axis=(2, 4))


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max pooling, stride 2, NHWC (see `max_pool`)."""
    return max_pool(x, (2, 2))


def global_avg_pool(x: jax.Array) -> jax.Array:
    """Mean over the spatial axes of an NHWC tensor."""
    return jnp.mean(x, axis=(1, 2))
