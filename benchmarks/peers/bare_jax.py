"""The limit the harness should approach: the task's model, augmentation and loss in a
hand-written jax.jit step.

Split once, merge inside a plain `jax.jit` with the state donated, optax Adam; no
harness, no data pipeline beyond cycling through pre-made device batches.
"""

import time
from collections.abc import Callable

import jax
import optax
from flax import nnx

from benchmarks.timing import Throughput, measure
from zoo.data import loader


def compile_step(workload) -> tuple[float, Callable[[int], None]]:
    """The step compiled for `workload`'s model, and `run(k)`: k steps over its batches,
    then wait for the state. Compile seconds first."""
    task, batch_size = workload.task, workload.task.config.train.batch_size
    net = task.build_model(workload.info, nnx.Rngs(0))
    optimizer = nnx.Optimizer(net, optax.adam(1e-3), wrt=nnx.Param)
    graphdef, state = nnx.split((net, optimizer))

    def step(state, batch, rng):
        net, optimizer = nnx.merge(graphdef, state)
        batch = task.augment(batch, rng)
        loss, grads = nnx.value_and_grad(lambda net: task.loss(net, batch, rng)[0])(net)
        optimizer.update(net, grads)
        return nnx.state((net, optimizer)), loss

    n = loader.num_examples(workload.train) // batch_size
    batches = [jax.device_put({k: v[i * batch_size:(i + 1) * batch_size]
                               for k, v in workload.train.items()}) for i in range(n)]
    rng = jax.random.key(0)
    t0 = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=0).lower(state, batches[0], rng).compile()
    compile_seconds = time.perf_counter() - t0
    holder = {"state": state, "i": 0}

    def run(k):
        for _ in range(k):
            holder["state"], _ = compiled(holder["state"], batches[holder["i"] % n], rng)
            holder["i"] += 1
        jax.block_until_ready(holder["state"])

    return compile_seconds, run


def train(workload, *, steps_per_window, windows) -> Throughput:
    compile_seconds, run = compile_step(workload)
    return measure("bare jax.jit", workload.model, workload.task.config.train.batch_size, run,
                   compile_seconds=compile_seconds, steps_per_window=steps_per_window,
                   windows=windows)
