"""LeNet and a multi-layer perceptron: the deck's classic MNIST networks."""

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.models.activations import get_activation
from zoo.models.conv import Conv
from zoo.models.layers import max_pool_2x2


class LeNet(nnx.Module):
    """LeNet as in the original MXNet example: conv 20 and 50 (5x5), dense 500.

    Convolutions are VALID; any input size of at least 16x16 works. Layers compute in
    `dtype` with float32 parameters; logits come back in float32.
    """

    min_input_size = 16  # two VALID 5x5 convolutions, each followed by a 2x2 pool
    # Piecewise linear and non-decreasing, so max pooling commutes with them bit for bit:
    # pooled first, the activation and its gradient run on a quarter of the pixels (the
    # train step 0.93-0.955x, benchmarks/README.md). It commutes with adding a channel's
    # bias too (a rounded sum is non-decreasing in each term), so the convolutions leave
    # their bias to after the pool (0.95-0.97x); it stays their parameter, where
    # checkpoints and hub files have it.
    POOL_FIRST = frozenset({"relu", "leaky_relu", "identity"})

    def __init__(self, input_shape: Sequence[int], num_classes: int, *,
                 activation: str = "relu", filters: Sequence[int] = (20, 50),
                 hidden: int = 500, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        h, w, c = input_shape
        self.act = get_activation(activation)
        self.pool_first = activation in self.POOL_FIRST
        self.conv1 = Conv(c, filters[0], (5, 5), padding="VALID", dtype=dtype, rngs=rngs)
        self.conv2 = Conv(filters[0], filters[1], (5, 5), padding="VALID", dtype=dtype,
                              rngs=rngs)
        if self.pool_first:  # added in `_pool_and_activate`
            self.conv1.use_bias = self.conv2.use_bias = False
        flat = ((h - 4) // 2 - 4) // 2 * (((w - 4) // 2 - 4) // 2) * filters[1]
        self.fc1 = nnx.Linear(flat, hidden, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, num_classes, dtype=dtype, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        """The penultimate (dense 500) activations: an embedding for Frechet distances."""
        x = self._pool_and_activate(self.conv1, x)
        x = self._pool_and_activate(self.conv2, x)
        return self.act(self.fc1(x.reshape(x.shape[0], -1)))

    def _pool_and_activate(self, conv: nnx.Conv, x: jax.Array) -> jax.Array:
        """`conv`, its bias, the activation and a 2x2 max pool, in the cheapest order
        that computes the same numbers."""
        if self.pool_first:
            x = max_pool_2x2(conv(x))
            return self.act(x + conv.bias[...].astype(x.dtype).reshape(1, 1, 1, -1))
        return max_pool_2x2(self.act(conv(x)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(self.features(x)).astype(jnp.float32)


class MLP(nnx.Module):
    """A fully connected network on flattened input (LeNet-300-100 by default)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, *,
                 activation: str = "relu", hidden: Sequence[int] = (300, 100),
                 dtype: Any = jnp.float32, rngs: nnx.Rngs):
        self.act = get_activation(activation)
        sizes = [math.prod(input_shape), *hidden]  # host ints: builds under nnx.eval_shape too
        self.hidden = nnx.List([nnx.Linear(a, b, dtype=dtype, rngs=rngs)
                                for a, b in zip(sizes, sizes[1:])])
        self.head = nnx.Linear(sizes[-1], num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for layer in self.hidden:
            x = self.act(layer(x))
        return self.head(x).astype(jnp.float32)
