"""Small building blocks shared by the model families."""

import jax
import jax.numpy as jnp


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max pooling, stride 2, NHWC (odd edges are dropped, as with VALID pooling).

    Written as reshape-then-max rather than `nnx.max_pool`: the gradient of
    `lax.reduce_window` lowers to select-and-scatter, which XLA's CPU backend runs about
    4x slower (see benchmarks/results.md); this form's gradient is a cheap compare.
    """
    n, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2, :]
    return jnp.max(x.reshape(n, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def global_avg_pool(x: jax.Array) -> jax.Array:
    """Mean over the spatial axes of an NHWC tensor."""
    return jnp.mean(x, axis=(1, 2))
