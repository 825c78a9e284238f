"""Where a training step's convolutions spend their time: each layer's forward pass,
weight gradient and input gradient, timed on its own under `jax.jit`: XLA's own
gradients, zoo's (`zoo.models.conv`), and PyTorch's.

    python -m benchmarks.layer_ops [--model lenet|resnet|crnn|all] [--batch-size 128] [--repeats 30]

Each operation is a separately jitted function of fixed inputs (medians of `--repeats`
calls after warm-up, wall time and this process's CPU time), so the table says which
layer and which direction is slow, not how a whole step schedules them. "x N" counts
the layer's uses in one step of the model; the last row sums count x time. zoo's input
gradient is XLA's own except where `conv.input_by_matmul` picks the matmul form; a first
layer's is never computed in training. The PyTorch columns time the same operations (NCHW, 2 threads;
skipped when torch is not installed). malloc is tuned as the `zoo` command tunes it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from zoo.models import conv
from zoo_hardware import allocator


class Layer(NamedTuple):
    name: str
    input_shape: tuple[int, int, int]  # HWC at batch 1
    kernel: tuple[int, ...]  # HWIO for a convolution, (in, out) for a dense layer
    stride: int = 1
    padding: str = "SAME"
    count: int = 1  # uses in one training step
    first: bool = False  # its input gradient is not needed in training


LAYERS = {
    "lenet": (Layer("conv1 1->20 5x5 on 28x28", (28, 28, 1), (5, 5, 1, 20), padding="VALID",
                    first=True),
              Layer("conv2 20->50 5x5 on 12x12", (12, 12, 20), (5, 5, 20, 50), padding="VALID"),
              Layer("fc1 800->500", (1, 1, 800), (800, 500))),
    "resnet": (Layer("stem 3->16 3x3 on 32x32", (32, 32, 3), (3, 3, 3, 16), first=True),
               Layer("16->16 3x3 on 32x32", (32, 32, 16), (3, 3, 16, 16), count=4),
               Layer("16->32 3x3 /2 on 32x32", (32, 32, 16), (3, 3, 16, 32), stride=2),
               Layer("16->32 1x1 /2 shortcut", (32, 32, 16), (1, 1, 16, 32), stride=2),
               Layer("32->32 3x3 on 16x16", (16, 16, 32), (3, 3, 32, 32), count=3),
               Layer("32->64 3x3 /2 on 16x16", (16, 16, 32), (3, 3, 32, 64), stride=2),
               Layer("32->64 1x1 /2 shortcut", (16, 16, 32), (1, 1, 32, 64), stride=2),
               Layer("64->64 3x3 on 8x8", (8, 8, 64), (3, 3, 64, 64), count=3)),
    "crnn": (Layer("conv1 1->16 3x3 on 32x256", (32, 256, 1), (3, 3, 1, 16), first=True),
             Layer("conv2 16->32 3x3 on 16x128", (16, 128, 16), (3, 3, 16, 32)),
             Layer("conv3 32->64 3x3 on 8x64", (8, 64, 32), (3, 3, 32, 64))),
}
# Per layer: forward, weight gradient, input gradient; (wall ms, CPU ms) each.
Times = dict[str, tuple[tuple[float, float], ...]]


def _median_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of `fn()` (which must block until done)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3


def _jax_conv(layer: Layer, convolution):
    return lambda x, k: convolution(x, k, (layer.stride,) * 2, layer.padding,
                                    dimension_numbers=conv.NHWC)


def jax_times(layers: tuple[Layer, ...], batch: int, repeats: int) -> tuple[Times, Times]:
    """XLA's (forward, weight gradient, input gradient) per layer, and zoo's."""
    rng = np.random.default_rng(0)
    xla, zoo = {}, {}
    for layer in layers:
        x = jnp.asarray(rng.standard_normal((batch, *layer.input_shape)), jnp.float32)
        k = jnp.asarray(rng.standard_normal(layer.kernel) * 0.1, jnp.float32)
        if len(layer.kernel) == 2:  # dense
            x = x.reshape(batch, -1)
            forward = jnp.matmul
            ours = forward
        else:
            forward = _jax_conv(layer, jax.lax.conv_general_dilated)
            ours = _jax_conv(layer, conv.conv_general_dilated)
        g = jnp.ones_like(forward(x, k))
        timed = {}
        for name, fn in (("xla", forward), ("zoo", ours)):
            grad_k = jax.jit(lambda x, k, g, fn=fn: jax.vjp(lambda k: fn(x, k), k)[1](g)[0])
            grad_x = jax.jit(lambda x, k, g, fn=fn: jax.vjp(lambda x: fn(x, k), x)[1](g)[0])
            timed[name] = tuple(_median_ms(lambda f=f: jax.block_until_ready(f(x, k, g)), repeats)
                                for f in (grad_k, grad_x))
        jitted = jax.jit(forward)
        forward_ms = _median_ms(lambda: jax.block_until_ready(jitted(x, k)), repeats)
        xla[layer.name] = (forward_ms, *timed["xla"])
        zoo[layer.name] = (forward_ms, *timed["zoo"])
    return xla, zoo


def torch_times(layers: tuple[Layer, ...], batch: int, repeats: int) -> Times | None:
    """The same three timings through PyTorch (NCHW, 2 threads)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(2)
    out = {}
    for layer in layers:
        h, w, c = layer.input_shape
        if len(layer.kernel) == 2:
            x, wt = torch.randn(batch, layer.kernel[0]), torch.randn(*layer.kernel)
            g = torch.ones(batch, layer.kernel[1])
            fns = (lambda: x @ wt, lambda: x.T @ g, lambda: g @ wt.T)
        else:
            kh, kw, ci, co = layer.kernel
            pad = 0 if layer.padding == "VALID" else kh // 2
            x, k = torch.randn(batch, c, h, w), torch.randn(co, ci, kh, kw) * 0.1
            functional = torch.nn.functional
            g = torch.ones_like(functional.conv2d(x, k, stride=layer.stride, padding=pad))
            fns = (lambda: functional.conv2d(x, k, stride=layer.stride, padding=pad),
                   lambda: torch.nn.grad.conv2d_weight(x, k.shape, g, layer.stride, pad),
                   lambda: torch.nn.grad.conv2d_input(x.shape, k, g, layer.stride, pad))
        out[layer.name] = tuple(_median_ms(fn, repeats) for fn in fns)
    return out


def table(layers: tuple[Layer, ...], xla: Times, zoo: Times, torch: Times | None,
          which: int) -> list[str]:
    """Markdown rows of wall (`which` 0) or CPU (1) ms: forward XLA / PyTorch, weight
    and input gradients XLA / zoo / PyTorch."""
    def times(source, layer, direction):
        return [] if source is None else [source[layer.name][direction][which]]

    lines = ["| layer | x N | forward | weight gradient | input gradient |", "|---|---|---|---|---|"]
    total = [np.zeros(2), np.zeros(3), np.zeros(3)]
    for layer in layers:
        columns = [times(xla, layer, 0) + times(torch, layer, 0),
                   times(xla, layer, 1) + times(zoo, layer, 1) + times(torch, layer, 1),
                   [] if layer.first else (times(xla, layer, 2) + times(zoo, layer, 2)
                                           + times(torch, layer, 2))]
        for direction, values in enumerate(columns):
            if values:
                total[direction][:len(values)] += layer.count * np.asarray(values)
        cells = [" / ".join(f"{v:.2f}" for v in values) or "not needed" for values in columns]
        lines.append(f"| {layer.name} | {layer.count} | " + " | ".join(cells) + " |")
    width = (1, 2, 2) if torch is None else (2, 3, 3)
    lines.append("| **one step** | | " + " | ".join(
        " / ".join(f"{v:.2f}" for v in t[:n]) for t, n in zip(total, width)) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=[*LAYERS, "all"], default="all")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    allocator.keep_freed_memory()  # as the `zoo` command runs
    for model in LAYERS if args.model == "all" else (args.model,):
        layers = LAYERS[model]
        xla, zoo = jax_times(layers, args.batch_size, args.repeats)
        torch = torch_times(layers, args.batch_size, args.repeats)
        for which, unit in enumerate(("wall", "CPU")):
            print(f"\n{model} layers at batch {args.batch_size}, {unit} ms (median of "
                  f"{args.repeats}): XLA {jax.__version__} / zoo / PyTorch")
            print("\n".join(table(layers, xla, zoo, torch, which)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
