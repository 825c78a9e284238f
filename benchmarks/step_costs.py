"""What each part of a convolutional model's training step costs inside the step.

    python -m benchmarks.step_costs [--model lenet|resnet] [--rounds 10] [--steps 5]

On a CPU, `jax.profiler`'s per-op times do not add up to the step: XLA runs independent
ops side by side on the cores, and the convolutions it does not hand to YNNPACK run on a
thread pool whose work the trace does not attribute. Here the bare `jax.jit` step
(benchmarks/peers/bare_jax.py) is compiled whole and once with each part replaced by a
near-free stand-in, and all are timed in alternating rounds in one process: a part costs
what the step saves without it. A second compile of the whole step shows the noise. The
stand-ins compute wrong gradients; those steps exist only to be timed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import time
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
from flax import nnx

from benchmarks import workloads
from benchmarks.peers import bare_jax
from zoo.models import conv
from zoo_hardware import allocator


@contextlib.contextmanager
def _left_out(gradient: str, applies: Callable[[conv.Geometry, tuple[int, ...]], bool],
              replaced: list[int]) -> Iterator[None]:
    """The convolutions' `gradient` ("weight" or "input") left out of the layers `applies`
    to (geometry, kernel shape)."""
    def backward(geometry, residuals, grad):
        lhs, rhs = residuals
        d_input, d_kernel = conv._conv_backward(geometry, residuals, grad)
        if applies(geometry, rhs.shape):
            replaced.append(1)
            if gradient == "weight":
                d_kernel = jnp.zeros_like(d_kernel)
            else:  # still waits for the output gradient, as the real one does
                d_input = lhs * (1e-6 * grad[0, 0, 0, 0])
        return d_input, d_kernel

    conv._conv.defvjp(conv._conv_forward, backward)
    try:
        yield
    finally:
        conv._conv.defvjp(conv._conv_forward, conv._conv_backward)


@contextlib.contextmanager
def _affine_batch_norm(replaced: list[int]) -> Iterator[None]:
    original = nnx.BatchNorm.__call__

    def affine(self, x, use_running_average=None, *, mask=None):
        replaced.append(1)
        features = (1,) * (x.ndim - 1) + (-1,)
        return x * self.scale[...].reshape(features) + self.bias[...].reshape(features)

    nnx.BatchNorm.__call__ = affine
    try:
        yield
    finally:
        nnx.BatchNorm.__call__ = original


# Each part: a context manager factory taking the list that counts the layers it hits.
PARTS = {
    "conv weight gradients": functools.partial(_left_out, "weight", lambda g, k: True),
    "conv weight gradients, <= 16 channels": functools.partial(
        _left_out, "weight", lambda g, k: max(k[2:]) <= 16),
    "conv input gradients": functools.partial(_left_out, "input", lambda g, k: True),
    "conv input gradients, strided": functools.partial(
        _left_out, "input", lambda g, k: g.strides != (1, 1)),
    "batch norm statistics": _affine_batch_norm,  # BatchNorm as its scale and bias alone
}
WHOLE = ("whole step", "whole step, compiled again")


def without(name: str, replaced: list[int]) -> contextlib.AbstractContextManager:
    """Steps traced inside leave out the part `name`; `replaced` counts the layers it hit."""
    return PARTS[name](replaced)


def step_costs(model: str, batch_size: int, rounds: int, steps: int) -> list[tuple[str, int | None, float]]:
    """(variant, layers replaced, median ms per step) for the whole step twice and each part."""
    workload = workloads.load(model, batch_size)
    runs, layers = {}, {}
    for name in (WHOLE[0], *PARTS, WHOLE[1]):
        replaced: list[int] = []
        with contextlib.nullcontext() if name in WHOLE else without(name, replaced):
            _, run = bare_jax.compile_step(workload)
        if replaced or name in WHOLE:
            run(1)
            runs[name], layers[name] = run, (len(replaced) if replaced else None)
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run(steps)
            times[name].append((time.perf_counter() - start) / steps * 1e3)
    return [(name, layers[name], statistics.median(times[name])) for name in runs]


def table(rows: list[tuple[str, int | None, float]]) -> list[str]:
    """Markdown rows: each variant's time, and what its part costs against the whole step."""
    whole = rows[0][2]
    lines = ["| variant | layers | ms per step | the part costs |", "|---|---|---|---|"]
    for name, count, ms in rows:
        cost = "" if name in WHOLE else f"{whole - ms:.1f} ms ({(whole - ms) / whole:.0%})"
        lines.append(f"| {name} | {count if count is not None else ''} | {ms:.1f} | {cost} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=list(workloads.INPUTS), default="resnet")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: the model's own (benchmarks.workloads.BATCH_SIZES)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5, help="steps per variant per round")
    args = parser.parse_args(argv)
    allocator.keep_freed_memory()  # as the `zoo` command runs
    batch_size = args.batch_size or workloads.BATCH_SIZES[args.model]
    load = os.getloadavg()[0]
    rows = step_costs(args.model, batch_size, args.rounds, args.steps)
    print(f"\n{args.model} training step at batch {batch_size}, jax {jax.__version__}, median of "
          f"{args.rounds} rounds of {args.steps} steps (load {load:.2f} -> {os.getloadavg()[0]:.2f})")
    print("\n".join(table(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
