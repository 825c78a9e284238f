"""Does int8 make a compressed LeNet faster on this CPU? Eval latency of each layer and
of the whole model at batch 256: float32, int8 as `zoo compress --quantize int8`
evaluates it (fake-quantized activations, float matmuls), int8 on integer codes (XLA's
int8 dot and convolution with int32 accumulation, `IntegerOp`: the candidate inference
path, with the kernel's codes computed once), and qwix's int8 post-training
quantization where qwix is installed.

    python -m benchmarks.int8_inference [--batch-size 256] [--rounds 7] [--calls 10]

The kernels are put on the int8 grid and the activation ranges calibrated on the
embedded digits, as `zoo compress` does; the variants run in alternating rounds
(median ms per call, wall and this process's CPU time), so load from other processes
falls on all alike. It also prints how far the integer path's logits are from the
fake-quantized ones (float rounding only: the codes are the same).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from zoo.data.mnist import mnist_sample
from zoo.models import LeNet
from zoo_hardware import allocator, quantization
from zoo_hardware.quantization import ActRange


class IntegerOp:
    """A layer's dot or convolution on int8 codes, accumulated in int32 (inference).

    With x ~ s_x * q_x (8-bit activation codes over `act`, as fake quantization rounds
    them) and w = s_w[c] * q_w (the int8 kernel), x.w = s_x * s_w[c] * (q_x . q_w).
    Unsigned (post-ReLU) codes 0..255 are held as int8 q_x - 128 and the offset added
    back as 128 * sum(q_w). LeNet's convolutions are unpadded ("VALID"); zero padding
    would have to hold the code -128.
    """

    def __init__(self, act: ActRange, codes: np.ndarray, scale: np.ndarray):
        self.act, self.codes, self.scale = act, codes.astype(np.int8), scale
        self.offset = 0 if act.signed else 128
        self.offset_sum = self.offset * self.codes.reshape(-1, self.codes.shape[-1]).sum(
            0, dtype=np.int32)

    def __call__(self, lhs, rhs, *args, **kwargs):
        levels = 127 if self.act.signed else 255
        scale_x = max(self.act.amax, 1e-12) / levels
        codes_x = jnp.clip(jnp.round(lhs / scale_x), -levels if self.act.signed else 0, levels)
        codes_x = (codes_x - self.offset).astype(jnp.int8)
        kwargs = {k: v for k, v in kwargs.items() if k not in ("precision", "preferred_element_type")}
        if rhs.ndim > 2 and args[1] != "VALID":  # a convolution: (strides, padding, ...)
            raise NotImplementedError("IntegerOp times unpadded convolutions only")
        matmul = jax.lax.conv_general_dilated if rhs.ndim > 2 else jax.lax.dot_general
        total = matmul(codes_x, self.codes, *args, preferred_element_type=jnp.int32, **kwargs)
        per_channel = (1,) * (total.ndim - 1) + (-1,)
        return ((total + self.offset_sum.reshape(per_channel)).astype(jnp.float32)
                * (scale_x * self.scale.reshape(per_channel)))


def int8_lenet() -> tuple[nnx.GraphDef, nnx.State, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """A LeNet whose kernels hold int8 values (code * per-channel scale), like a
    compressed one, and each kernel's (codes, scales). Weights are drawn with numpy:
    latency does not depend on them, and LeNet's own initializers take seconds to compile."""
    graphdef, shapes = nnx.split(nnx.eval_shape(lambda: LeNet((28, 28, 1), 10, rngs=nnx.Rngs(0))))
    rng = np.random.default_rng(0)
    state = jax.tree.map(lambda x: jnp.asarray(rng.normal(0, 0.05, x.shape), x.dtype), shapes)
    model = nnx.merge(graphdef, state)
    layers = {path: layer for path, layer, _, _ in quantization.quantizable_layers(model)}
    codes = jax.jit(lambda kernels: {path: quantization.int_codes(k, 8) for path, k in kernels.items()})(
        {path: layer.kernel[...] for path, layer in layers.items()})
    for path, layer in layers.items():
        layer.kernel[...] = codes[path][0] * codes[path][1].reshape(
            (1,) * (layer.kernel.ndim - 1) + (-1,))
    graphdef, state = nnx.split(model)
    return graphdef, state, jax.tree.map(np.asarray, codes)


def variants(images: jax.Array, with_qwix: bool) -> dict[str, nnx.Module]:
    """The models to time, by name: one int8-valued LeNet run three or four ways."""
    graphdef, state, codes = int8_lenet()
    models = {name: nnx.merge(graphdef, state)
              for name in ("float32", "int8 fake-quant", "int8 integer")}
    ranges = quantization.calibrate(models["float32"], lambda m: m(images[:128]), bits=8)
    quantization.quantize_layers(models["int8 fake-quant"], act_bits=8, ranges=ranges)
    for path, layer, attr, _ in quantization.quantizable_layers(models["int8 integer"]):
        setattr(layer, attr, IntegerOp(ranges[path], *codes[path]))
    if with_qwix:
        import qwix

        rule = qwix.QuantizationRule(module_path=".*", weight_qtype=jnp.int8, act_qtype=jnp.int8)
        models["qwix int8 (dynamic ranges)"] = qwix.quantize_model(
            nnx.merge(graphdef, state), qwix.PtqProvider([rule]), images[:1])
    return models


def layer_inputs(model: nnx.Module, images: jax.Array) -> dict[str, jax.Array]:
    """The input each quantizable layer of `model` sees (one compiled forward pass)."""
    graphdef, state = nnx.split(model)

    def run(state):
        net, seen = nnx.merge(graphdef, state), {}
        for path, layer, attr, op in quantization.quantizable_layers(net):
            def record(lhs, rhs, *args, path=path, op=op, **kwargs):
                seen[path] = lhs
                return op(lhs, rhs, *args, **kwargs)
            setattr(layer, attr, record)
        net(images)
        return seen

    return jax.jit(run)(state)


def layer_calls(model: nnx.Module, inputs: dict[str, jax.Array]) -> dict[str, Callable[[], jax.Array]]:
    """Each quantizable layer of `model`, jitted, applied to its input."""
    calls = {}
    for path, layer, _, _ in quantization.quantizable_layers(model):
        graphdef, state = nnx.split(layer)
        forward = jax.jit(lambda s, x, g=graphdef: nnx.merge(g, s)(x))
        calls[path] = lambda f=forward, s=state, x=inputs[path]: f(s, x)
    return calls


def alternate(calls: dict[str, Callable[[], jax.Array]], rounds: int,
              repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall ms, CPU ms) per call, the callables taking turns round by round."""
    for call in calls.values():
        jax.block_until_ready(call())
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(repeats):
                jax.block_until_ready(call())
            wall[name].append((time.perf_counter() - t0) / repeats * 1e3)
            cpu[name].append((time.process_time() - c0) / repeats * 1e3)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in calls}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=10, help="calls per round")
    parser.add_argument("--qwix", action=argparse.BooleanOptionalAction,
                        default=importlib.util.find_spec("qwix") is not None,
                        help="time qwix's int8 too (default: when installed)")
    args = parser.parse_args(argv)
    allocator.keep_freed_memory()  # as the `zoo` command runs
    images = jnp.asarray(mnist_sample()[0][:args.batch_size], jnp.float32) / 255.0
    models = variants(images, args.qwix)
    forwards = {}
    for name, model in models.items():
        graphdef, state = nnx.split(model)
        forward = jax.jit(lambda s, x, g=graphdef: nnx.merge(g, s)(x))
        forwards[name] = lambda f=forward, s=state: f(s, images)
    logits = {name: call() for name, call in forwards.items()}
    whole = alternate(forwards, args.rounds, args.calls)
    inputs = layer_inputs(models["float32"], images)
    layers = {name: alternate(layer_calls(models[name], inputs), args.rounds, args.calls)
              for name in models if not name.startswith("qwix")}
    print(f"LeNet eval at batch {args.batch_size}, ms per call (median of {args.rounds} rounds "
          f"of {args.calls}), wall / CPU; jax {jax.__version__}")
    names = list(layers)
    print("| layer | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for path in layers["float32"]:
        print(f"| {path} | " + " | ".join(f"{layers[n][path][0]:.2f} / {layers[n][path][1]:.2f}"
                                         for n in names) + " |")
    print("| **whole model** | " + " | ".join(f"{whole[n][0]:.2f} / {whole[n][1]:.2f}"
                                             for n in names) + " |")
    for name in models:
        if name not in names:
            print(f"{name}, whole model: {whole[name][0]:.2f} / {whole[name][1]:.2f} ms")
    gap = float(jnp.max(jnp.abs(logits["int8 integer"] - logits["int8 fake-quant"])))
    agree = float(jnp.mean(logits["int8 integer"].argmax(-1) == logits["int8 fake-quant"].argmax(-1)))
    print(f"integer vs fake-quant logits: max |difference| {gap:.2e}, same class for "
          f"{agree:.1%} of the batch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
