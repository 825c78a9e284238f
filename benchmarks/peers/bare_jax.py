"""The limit the harness should approach: the same NNX model in a hand-written jax.jit step.

Split once, merge inside a plain `jax.jit` with the state donated, optax Adam; no
harness, no data pipeline beyond slicing pre-made device batches.
"""

import time

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from benchmarks.timing import Throughput, measure
from zoo.models import create_classifier


def train(model, images, labels, batch_size, *, steps_per_window, windows) -> Throughput:
    net = create_classifier(model, images.shape[1:], 10, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(net, optax.adam(1e-3), wrt=nnx.Param)
    graphdef, state = nnx.split((net, optimizer))

    def step(state, x, y):
        net, optimizer = nnx.merge(graphdef, state)

        def loss_fn(net):
            logits = net(x.astype(jnp.float32) / 255.0)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(net)
        optimizer.update(net, grads)
        return nnx.state((net, optimizer)), loss

    n = len(images) // batch_size
    xs = [jax.device_put(images[i * batch_size:(i + 1) * batch_size]) for i in range(n)]
    ys = [jax.device_put(labels[i * batch_size:(i + 1) * batch_size]) for i in range(n)]
    t0 = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=0).lower(state, xs[0], ys[0]).compile()
    compile_seconds = time.perf_counter() - t0
    holder = {"state": state, "i": 0}

    def run(k):
        for _ in range(k):
            i = holder["i"] % n
            holder["state"], _ = compiled(holder["state"], xs[i], ys[i])
            holder["i"] += 1
        jax.block_until_ready(holder["state"])

    return measure("bare jax.jit", model, batch_size, run, compile_seconds=compile_seconds,
                   steps_per_window=steps_per_window, windows=windows)

