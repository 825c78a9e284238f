"""The other figures of the benchmark report: the matmul peak (for the achieved FLOP/s of
the training rows), inference latency, input-pipeline throughput and cold versus warm
start."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.timing import percentile


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a jitted n x n float32 matmul: this machine's practical peak."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / float(np.median(times))


def inference_latency(model: str = "lenet", requests: int = 200) -> dict:
    """Batch-1 latency (p50/p99) and batch-256 throughput of a compiled forward pass."""
    import jax
    from flax import nnx

    from benchmarks.workloads import image_arrays
    from zoo.models import create_classifier

    images, _ = image_arrays(model)
    net = create_classifier(model, images.shape[1:], 10, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(nnx.view(net, deterministic=True, use_running_average=True,
                                         raise_if_not_found=False))
    forward = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x.astype(np.float32) / 255.0))
    one, many = images[:1], images[:256]
    forward(state, one).block_until_ready()
    forward(state, many).block_until_ready()
    latencies = []
    for i in range(requests):
        t0 = time.perf_counter()
        forward(state, images[i:i + 1]).block_until_ready()
        latencies.append((time.perf_counter() - t0) * 1e3)
    t0 = time.perf_counter()
    for _ in range(10):
        forward(state, many).block_until_ready()
    return {"model": model, "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "batch256_examples_per_s": 2560 / (time.perf_counter() - t0)}


def pipeline_throughput(batch_size: int, epochs: int = 5) -> float:
    """Examples/s of zoo's input pipeline alone (seeded shuffle + batch gather), no model."""
    from zoo.data import loader
    from zoo.data.mnist import mnist_sample

    images, labels = mnist_sample()
    arrays = {"image": images, "label": labels}
    t0 = time.perf_counter()
    count = sum(len(b["label"]) for e in range(epochs)
                for b in loader.train_batches(arrays, batch_size, seed=0, epoch=e))
    return count / (time.perf_counter() - t0)


def start_times() -> dict:
    """Seconds from process start to the first finished train step, cold then warm.

    Both runs share one fresh ZOO_HOME: the second finds the first's compilation cache.
    """
    code = ("import time; t0 = time.perf_counter()\n"
            "from zoo.harness.trainer import open_session, train_steps\n"
            "from zoo.data import loader\n"
            "from zoo_tasks.classification import ClassificationTask\n"
            "task = ClassificationTask()\n"
            "s = open_session(task)\n"
            "b = loader.train_batches(s.data.splits['train'], 128, seed=0, epoch=0)\n"
            "import jax; next(train_steps(s, b, 0)); jax.block_until_ready(s.state)\n"
            "print(time.perf_counter() - t0)\n")
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "ZOO_HOME": home}
        out = [float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                    text=True, check=True).stdout.split()[-1]) for _ in range(2)]
    return {"cold_s": out[0], "warm_s": out[1], "speedup": out[0] / out[1]}


def measure_all(batch_size: int) -> dict:
    return {"matmul_peak_gflops": matmul_peak() / 1e9,
            "inference": [inference_latency(m) for m in ("lenet", "resnet")],
            "pipeline_examples_per_s": pipeline_throughput(batch_size),
            "pipeline_batch_size": batch_size,
            "start": start_times()}
