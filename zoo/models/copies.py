"""Non-trainable copies of a module: exponential moving averages and frozen networks.

A copy computes exactly like the original, but its variables have another type than
`nnx.Param`, so no `wrt=nnx.Param` optimizer or gradient ever touches it, while it
still lives in the model state and is therefore checkpointed, restored and placed on
devices with everything else.
"""

import jax
import jax.numpy as jnp
from flax import nnx


class Average(nnx.Variable):
    """An exponential moving average of another module's variable."""


class Frozen(nnx.Variable):
    """A fixed value: a trained judge network, or a network's weights at initialization."""


def _variables(module: nnx.Module) -> list[nnx.Variable]:
    return jax.tree.leaves(nnx.state(module), is_leaf=lambda x: isinstance(x, nnx.Variable))


def retyped_copy(module: nnx.Module, variable_type: type[nnx.Variable]) -> nnx.Module:
    """A copy of `module` (graph and values) whose variables are all of `variable_type`.

    The values are copied too: a copy sharing buffers with its original could not be
    donated to a compiled step beside it.
    """
    graphdef, state = nnx.split(module)
    state = jax.tree.map(lambda v: variable_type(jnp.copy(v[...])), state,
                         is_leaf=lambda x: isinstance(x, nnx.Variable))
    return nnx.merge(graphdef, state)


def update_average(average: nnx.Module, module: nnx.Module, decay: jax.Array | float) -> None:
    """average <- decay * average + (1 - decay) * module, variable by variable, in place.

    `average` is a `retyped_copy(module, Average)`: every variable (parameters and
    batch-norm statistics alike) is averaged, so the statistics match the weights.
    """
    for avg, var in zip(_variables(average), _variables(module), strict=True):
        avg[...] = avg[...] + (1.0 - decay) * (var[...] - avg[...])
