"""Building a model with its initializers run as one compiled program.

Built eagerly, every initializer of a new shape is its own XLA program, and on CPU LLVM
spends about a second optimising each threefry kernel: 10-20 CPU-seconds for a small
detector before its first step. One program compiled without LLVM optimisation (on CPU;
it runs once) takes 2-5. The values agree with eager initialisation to a float32 ulp.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import jax
from flax import nnx

M = TypeVar("M", bound=nnx.Module)


def initialised(build: Callable[[nnx.Rngs], M], rngs: nnx.Rngs) -> M:
    """`build(rngs)`, run as one program; advances `rngs` as the eager call would."""
    rng_graph, rng_state = nnx.split(rngs)
    built = {}

    def init(rng_state):
        streams = nnx.merge(rng_graph, rng_state)
        built["graph"], state = nnx.split(build(streams))
        return state, nnx.state(streams)

    options = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
    state, rng_state = jax.jit(init, compiler_options=options)(rng_state)
    nnx.update(rngs, rng_state)
    return nnx.merge(built["graph"], state)
