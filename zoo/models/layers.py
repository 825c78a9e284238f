"""Small building blocks shared by the model families."""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp


def max_pool(x: jax.Array, window: Sequence[int]) -> jax.Array:
    """Non-overlapping (h, w) max pooling, stride = window, NHWC (odd edges dropped).

    Written as reshape-then-max rather than `nnx.max_pool`: the gradient of
    `lax.reduce_window` lowers to select-and-scatter, which XLA's CPU backend runs about
    4x slower (see benchmarks/results.md).
    """
    _, h, w, _ = x.shape
    ph, pw = window
    return _max_pool(x[:, : h // ph * ph, : w // pw * pw, :], (ph, pw))


def _window_max(x: jax.Array, window: tuple[int, int]) -> jax.Array:
    n, h, w, c = x.shape
    ph, pw = window
    return jnp.max(x.reshape(n, h // ph, ph, w // pw, pw, c), axis=(2, 4))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _max_pool(x: jax.Array, window: tuple[int, int]) -> jax.Array:
    """`_window_max`, whose gradient is JAX's own (each window's maxima share it equally)
    with the maxima counted by adding strided views: XLA's CPU backend runs JAX's
    counting reduction over the window axes slowly (LeNet's train step is 0.93-0.96x the
    time with this backward pass; the CRNN's 1.01-1.02x, benchmarks/README.md)."""
    return _window_max(x, window)


def _max_pool_forward(x, window):
    pooled = _window_max(x, window)
    return pooled, (x, pooled)


def _max_pool_backward(window, residuals, grad):
    x, pooled = residuals
    n, h, w, c = x.shape
    ph, pw = window

    def spread(a):  # each window's value on each of its pixels
        a = jnp.broadcast_to(a[:, :, None, :, None], (n, h // ph, ph, w // pw, pw, c))
        return a.reshape(x.shape)

    maxima = (x == spread(pooled)).astype(grad.dtype)
    counts = sum(maxima[:, i::ph, j::pw] for i in range(ph) for j in range(pw))
    return (maxima * spread(grad / counts),)


_max_pool.defvjp(_max_pool_forward, _max_pool_backward)


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max pooling, stride 2, NHWC (see `max_pool`)."""
    return max_pool(x, (2, 2))


def global_avg_pool(x: jax.Array) -> jax.Array:
    """Mean over the spatial axes of an NHWC tensor."""
    return jnp.mean(x, axis=(1, 2))
