"""Where LeNet's training step spends its time: each layer's forward pass, weight
gradient and input gradient, timed on its own under `jax.jit`, beside PyTorch's.

    python -m benchmarks.lenet_ops [--batch-size 128] [--repeats 30]

Each operation is a separately jitted function of fixed inputs (medians of `--repeats`
calls after warm-up), so the table says which convolution and which direction XLA's CPU
backend is slow on, not how a whole step schedules them. The PyTorch column times the
same operation through autograd (skipped when torch is not installed).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

# (name, input NHWC shape at batch 1, kernel HWIO) of LeNet's two convolutions and fc1.
CONVS = (("conv1 1->20 5x5 on 28x28", (28, 28, 1), (5, 5, 1, 20)),
         ("conv2 20->50 5x5 on 12x12", (12, 12, 20), (5, 5, 20, 50)))
DENSE = ("fc1 800->500", 800, 500)


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _conv(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def jax_times(batch: int, repeats: int) -> dict[str, tuple[float, float, float]]:
    """ms for (forward, weight gradient, input gradient) of each layer."""
    rng = np.random.default_rng(0)
    out = {}
    for name, shape, kshape in CONVS:
        x = jnp.asarray(rng.standard_normal((batch, *shape)), jnp.float32)
        k = jnp.asarray(rng.standard_normal(kshape) * 0.1, jnp.float32)
        forward = jax.jit(_conv)
        grad_k = jax.jit(lambda x, k, g: jax.vjp(lambda k: _conv(x, k), k)[1](g)[0])
        grad_x = jax.jit(lambda x, k, g: jax.vjp(lambda x: _conv(x, k), x)[1](g)[0])
        g = jnp.ones_like(forward(x, k))
        out[name] = (_median_ms(lambda: forward(x, k), repeats),
                     _median_ms(lambda: grad_k(x, k, g), repeats),
                     _median_ms(lambda: grad_x(x, k, g), repeats))
    name, n_in, n_out = DENSE
    x = jnp.asarray(rng.standard_normal((batch, n_in)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((n_in, n_out)) * 0.05, jnp.float32)
    g = jnp.ones((batch, n_out), jnp.float32)
    forward, grad_w = jax.jit(jnp.matmul), jax.jit(lambda x, g: x.T @ g)
    grad_x = jax.jit(lambda g, w: g @ w.T)
    out[name] = (_median_ms(lambda: forward(x, w), repeats),
                 _median_ms(lambda: grad_w(x, g), repeats),
                 _median_ms(lambda: grad_x(g, w), repeats))
    return out


def torch_times(batch: int, repeats: int) -> dict[str, tuple[float, float, float]] | None:
    """The same three timings through PyTorch autograd (NCHW, 2 threads)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(2)
    out = {}

    def timed(fn):
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e3

    for name, (h, w, c), (kh, kw, ci, co) in CONVS:
        x = torch.randn(batch, c, h, w)
        k = torch.randn(co, ci, kh, kw) * 0.1
        g = torch.ones(batch, co, h - kh + 1, w - kw + 1)
        conv = torch.nn.functional.conv2d
        forward = timed(lambda: conv(x, k))
        grad_k = timed(lambda: torch.nn.grad.conv2d_weight(x, k.shape, g))
        grad_x = timed(lambda: torch.nn.grad.conv2d_input(x.shape, k, g))
        out[name] = (forward, grad_k, grad_x)
    name, n_in, n_out = DENSE
    x, wt, g = torch.randn(batch, n_in), torch.randn(n_in, n_out), torch.ones(batch, n_out)
    out[name] = (timed(lambda: x @ wt), timed(lambda: x.T @ g), timed(lambda: g @ wt.T))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    ours = jax_times(args.batch_size, args.repeats)
    theirs = torch_times(args.batch_size, args.repeats)
    print(f"LeNet layers at batch {args.batch_size}, ms (median of {args.repeats}): "
          f"JAX/XLA {jax.__version__} | PyTorch")
    print("| layer | forward | weight gradient | input gradient |")
    print("|---|---|---|---|")
    for name, times in ours.items():
        cells = [f"{t:.2f}" + (f" / {theirs[name][i]:.2f}" if theirs else "")
                 for i, t in enumerate(times)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
