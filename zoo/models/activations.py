"""Activation functions by name: the deck's table of seven, plus the modern ones."""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from zoo.errors import unknown


def binary_step(x: jax.Array) -> jax.Array:
    """1 where x >= 0, else 0. Its gradient is zero everywhere: a historical curiosity."""
    return (x >= 0).astype(x.dtype)


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    # The seven of the original deck's table.
    "identity": lambda x: x,
    "binary_step": binary_step,
    "logistic": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "arctan": jnp.arctan,
    "softsign": jax.nn.soft_sign,
    "relu": jax.nn.relu,
    # Modern ones.
    "leaky_relu": jax.nn.leaky_relu,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "softplus": jax.nn.softplus,
}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The activation called `name`; an unknown name raises with the closest ones."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise unknown("activation", name, ACTIVATIONS) from None
