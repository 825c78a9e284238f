"""Weight and activation quantization: integer, binary and k-means weight sharing.

A quantized kernel is held as integer `codes` with the array's shape plus the numbers
that turn them back into floats (`Quantized`). Code 0 is always the value 0, so pruned
weights need no separate mask and the artifact stores only the non-zero codes:

- int (8 or 4 bits): symmetric per output channel, w = code * scale[c], |code| <= 2^(b-1)-1
- binary: w = code * scale[c] with code in {-1, +1} (0 only where pruned), scale = mean |w|
- kmeans (n bits): w = codebook[code - 1], 2^n shared values per layer (Deep Compression)

The output channel is the last axis (flax's Linear and Conv kernels both end in it).
Activations are fake-quantized at the input of every `nnx.Linear` and `nnx.Conv` with a
static range calibrated on training data (`calibrate`), by swapping the layer's
`dot_general`/`conv_general_dilated` for a `QuantizedOp`: no model code changes, the
parameter tree stays the same, and the quantization compiles into the jitted step.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from zoo.errors import ZooError

Kind = Literal["int", "binary", "kmeans"]


@dataclasses.dataclass(frozen=True)
class Scheme:
    """How weights (and optionally activations) are quantized.

    Attributes:
      kind: "int", "binary" or "kmeans".
      bits: bits per weight code (8 or 4 for int, 1 for binary, n for kmeans' 2^n centroids).
      act_bits: bits of the input activations of each Linear/Conv (0: float).
    """

    kind: Kind
    bits: int
    act_bits: int = 0

    def __str__(self) -> str:
        name = f"kmeans:{self.bits}" if self.kind == "kmeans" else (
            "binary" if self.kind == "binary" else f"int{self.bits}")
        return name + (f"+a{self.act_bits}" if self.act_bits else "")


def parse_scheme(text: str, act_bits: int | None = None) -> Scheme:
    """Parses --quantize int8|int4|binary|kmeans:N; int schemes quantize activations too.

    Args:
      text: the scheme name.
      act_bits: activation bits (0 for float); default: the weight bits for int8/int4,
        float for binary and kmeans (weight-only, as in BinaryConnect and Deep Compression).
    """
    fixed = {"int8": ("int", 8), "int4": ("int", 4), "binary": ("binary", 1)}
    if text in fixed:
        kind, bits = fixed[text]
    elif text.startswith("kmeans:") and text[7:].isdigit() and 1 <= int(text[7:]) <= 8:
        kind, bits = "kmeans", int(text[7:])
    else:
        raise ZooError(f"--quantize {text!r}: choose int8, int4, binary or kmeans:N "
                       f"(N = 1..8 bits, 2^N shared weights per layer)")
    if act_bits is None:
        act_bits = bits if kind == "int" else 0
    if act_bits not in (0, 4, 8):
        raise ZooError(f"--act-bits {act_bits}: choose 0 (float), 4 or 8")
    return Scheme(kind, bits, act_bits)


class Quantized(NamedTuple):
    """One quantized kernel: integer codes (0 means zero) and how to decode them."""

    codes: np.ndarray  # int32, the kernel's shape
    scale: np.ndarray  # float32 per output channel (int, binary); [1.0] for kmeans
    codebook: np.ndarray | None  # float32 [2^bits] for kmeans, else None

    def values(self) -> np.ndarray:
        """The float32 weights these codes stand for."""
        if self.codebook is None:
            return (self.codes * self.scale).astype(np.float32)
        table = np.concatenate([[0.0], self.codebook]).astype(np.float32)
        return table[self.codes]


def _channel_reduce(fn, w: jax.Array) -> jax.Array:
    """`fn` over all but the last (output channel) axis, kept for broadcasting against `w`."""
    return fn(w.reshape(-1, w.shape[-1]), axis=0).reshape((1,) * (w.ndim - 1) + (-1,))


def _int_max(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def int_codes(w: jax.Array, bits: int) -> tuple[jax.Array, jax.Array]:
    """Symmetric per-channel codes and scales: |w - code*scale| <= scale / 2."""
    qmax = _int_max(bits)
    scale = _channel_reduce(jnp.max, jnp.abs(w)) / qmax
    scale = jnp.where(scale > 0, scale, 1.0)
    return jnp.clip(jnp.round(w / scale), -qmax, qmax).astype(jnp.int32), scale.ravel()


def binary_codes(w: jax.Array) -> tuple[jax.Array, jax.Array]:
    """sign(w) with the per-channel mean magnitude of the non-zero weights as scale.

    The mean magnitude is the scale minimising the L2 error of sign(w)*scale (XNOR-Net).
    """
    nonzero = w != 0
    total = _channel_reduce(jnp.sum, jnp.abs(w))
    count = _channel_reduce(jnp.sum, nonzero.astype(w.dtype))
    scale = jnp.where(count > 0, total / jnp.maximum(count, 1.0), 1.0)
    return jnp.sign(w).astype(jnp.int32), scale.ravel()


@functools.partial(jax.jit, static_argnames=("bits", "iterations"))
def kmeans_codes(w: jax.Array, *, bits: int, iterations: int = 30) -> tuple[jax.Array, jax.Array]:
    """Clusters the non-zero weights of `w` into exactly 2^bits shared values.

    Lloyd's algorithm in one dimension, from centroids spaced linearly over the weight
    range (Deep Compression found linear initialisation keeps the rare large weights,
    which matter most, better than density-based starts). Zeros (pruned) keep code 0.

    Returns:
      codes (int32, w's shape, 0 where w == 0, else 1..2^bits) and the codebook.
    """
    k = 2 ** bits
    flat = w.ravel()
    live = flat != 0
    lo = jnp.min(jnp.where(live, flat, jnp.inf))
    hi = jnp.max(jnp.where(live, flat, -jnp.inf))
    centroids = jnp.linspace(lo, hi, k)

    def assign(c):  # centroids stay sorted in 1-D Lloyd, so nearest = between midpoints
        return jnp.searchsorted((c[1:] + c[:-1]) / 2, flat)

    def step(_, c):
        index = assign(c)
        weight = live.astype(flat.dtype)
        sums = jax.ops.segment_sum(flat * weight, index, num_segments=k)
        counts = jax.ops.segment_sum(weight, index, num_segments=k)
        return jnp.where(counts > 0, sums / jnp.maximum(counts, 1.0), c)

    centroids = jax.lax.fori_loop(0, iterations, step, centroids)
    codes = jnp.where(live, assign(centroids) + 1, 0).astype(jnp.int32)
    return codes.reshape(w.shape), centroids


def quantize(w: jax.Array, scheme: Scheme) -> Quantized:
    """Quantizes one kernel under `scheme` (zeros stay code 0)."""
    if scheme.kind == "kmeans":
        codes, codebook = kmeans_codes(w, bits=scheme.bits)
        return Quantized(np.asarray(codes), np.ones(1, np.float32), np.asarray(codebook, np.float32))
    codes, scale = binary_codes(w) if scheme.kind == "binary" else int_codes(w, scheme.bits)
    return Quantized(np.asarray(codes), np.asarray(scale, np.float32), None)


def codebook_from(w: np.ndarray, codes: np.ndarray, bits: int) -> np.ndarray:
    """The shared value of each cluster, read back from weights fine-tuned with tied updates."""
    flat, index = np.asarray(w, np.float64).ravel(), codes.ravel()
    sums = np.bincount(index, flat, minlength=2 ** bits + 1)[1:]
    counts = np.bincount(index, minlength=2 ** bits + 1)[1:]
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0).astype(np.float32)


def fake_quant_weights(w: jax.Array, scheme: Scheme) -> jax.Array:
    """`w` rounded to `scheme` in the forward pass, identity in the backward pass (STE)."""
    codes, scale = binary_codes(w) if scheme.kind == "binary" else int_codes(w, scheme.bits)
    return w + jax.lax.stop_gradient(codes * scale.reshape((1,) * (w.ndim - 1) + (-1,)) - w)


def fake_quant_activations(x: jax.Array, *, bits: int, amax: float, signed: bool) -> jax.Array:
    """Rounds `x` to `bits` over the static range [-amax, amax] (or [0, amax]).

    The gradient passes straight through inside the range and is zero where clipped.
    """
    levels = _int_max(bits) if signed else 2 ** bits - 1
    scale = max(amax, 1e-12) / levels
    clipped = jnp.clip(x, -amax if signed else 0.0, amax)
    return clipped + jax.lax.stop_gradient(jnp.round(clipped / scale) * scale - clipped)


@dataclasses.dataclass(frozen=True)
class ActRange:
    """A layer input's calibrated range: [-amax, amax], or [0, amax] when never negative."""

    amax: float
    signed: bool


@dataclasses.dataclass(frozen=True)
class QuantizedOp:
    """Stands in for a layer's `lax.dot_general`/`lax.conv_general_dilated`.

    Fake-quantizes the input activations (`act_bits` over `act`) and, for
    quantization-aware training, the kernel (`weights`, with STE). Frozen and hashable:
    it is static graph structure, compiled into the step. (Integer arithmetic in its place
    measured no faster than this and slower than float32 on an AVX2 CPU without VNNI:
    benchmarks/int8_inference.py.)
    """

    op: Callable[..., jax.Array]
    act_bits: int = 0
    act: ActRange | None = None
    weights: Scheme | None = None

    def __call__(self, lhs, rhs, *args, **kwargs):
        if self.act_bits and self.act is not None:
            lhs = fake_quant_activations(lhs, bits=self.act_bits, amax=self.act.amax,
                                         signed=self.act.signed)
        if self.weights is not None:
            rhs = fake_quant_weights(rhs, self.weights)
        return self.op(lhs, rhs, *args, **kwargs)


_LAYER_OPS = ((nnx.Conv, "conv_general_dilated"), (nnx.Linear, "dot_general"))


def quantizable_layers(model: nnx.Module) -> Iterable[tuple[str, nnx.Module, str, Callable]]:
    """(path, layer, attribute, its op) of every Linear and Conv in `model`."""
    for path, module in nnx.iter_modules(model):
        for cls, attr in _LAYER_OPS:
            if isinstance(module, cls):
                yield "/".join(map(str, path)), module, attr, getattr(module, attr)


def quantize_layers(model: nnx.Module, *, act_bits: int, ranges: Mapping[str, ActRange],
                    weights: Scheme | None = None) -> None:
    """Makes every Linear/Conv of `model` quantize its inputs (and kernel) in place,
    around the layer's own op (zoo.models.conv's keeps its fast gradient for QAT)."""
    for path, layer, attr, op in quantizable_layers(model):
        setattr(layer, attr, QuantizedOp(op, act_bits, ranges.get(path), weights))


ActEval = Literal["fake-quant", "float"]


def activation_meta(act_bits: int, ranges: Mapping[str, ActRange],
                    act_eval: ActEval = "fake-quant") -> dict[str, Any]:
    """Calibrated activation quantization as JSON, for the model.zc metadata.

    `act_eval` says how the model evaluates: "fake-quant" rounds each Linear/Conv input
    to the calibrated grid (as int8 hardware would compute), "float" keeps float inputs
    (the int weights, decoded once, are used as they are): `zoo compress` picks the
    faster on this machine where its accuracy is no lower. The ranges stay recorded
    either way, for an integer back end.
    """
    return {"act_bits": act_bits, "act_eval": act_eval,
            "act_ranges": {k: dataclasses.asdict(v) for k, v in ranges.items()}}


def activation_edit(meta: Mapping[str, Any]) -> Callable[[nnx.Module], None] | None:
    """The layer edit that quantizes activations as `activation_meta` recorded them
    (None for float activations, or when the model evaluates them in float)."""
    if not meta.get("act_bits") or meta.get("act_eval") == "float":
        return None
    ranges = {k: ActRange(**v) for k, v in meta.get("act_ranges", {}).items()}
    return functools.partial(quantize_layers, act_bits=meta["act_bits"], ranges=ranges)


class _Recorder:
    """Eager-only stand-in op that samples the inputs a layer sees."""

    def __init__(self, op: Callable, samples: list, rng: np.random.Generator, limit: int):
        self.op, self.samples, self.rng, self.limit = op, samples, rng, limit

    def __call__(self, lhs, rhs, *args, **kwargs):
        flat = np.asarray(lhs).ravel()
        if flat.size > self.limit:
            flat = self.rng.choice(flat, self.limit, replace=False)
        self.samples.append(flat)
        return self.op(lhs, rhs, *args, **kwargs)


def calibrate(model: nnx.Module, run: Callable[[nnx.Module], None], *, bits: int,
              samples_per_call: int = 20_000) -> dict[str, ActRange]:
    """The input range of each Linear/Conv for `bits`-bit activations, from real data.

    Args:
      model: the float model (unchanged on return).
      run: calls the model on calibration batches (eagerly, e.g. the task's eval_step
        over some training batches).
      bits: the activation bits the ranges are chosen for.

    Returns:
      {layer path: ActRange}. Each range minimises the mean squared quantization error
      over the sampled inputs (clipping rare outliers buys resolution for the rest).
    """
    layers = list(quantizable_layers(model))
    samples: dict[str, list] = {path: [] for path, *_ in layers}
    rng = np.random.default_rng(0)
    for path, layer, attr, op in layers:
        setattr(layer, attr, _Recorder(op, samples[path], rng, samples_per_call))
    try:
        run(model)
    finally:
        for _, layer, attr, op in layers:
            setattr(layer, attr, op)
    return {path: _best_range(np.concatenate(s), bits) for path, s in samples.items() if s}


def _best_range(x: np.ndarray, bits: int) -> ActRange:
    signed = bool(x.min() < 0)
    top = float(np.abs(x).max())
    best, best_err = top, np.inf
    for amax in top * np.linspace(0.2, 1.0, 33):
        levels = _int_max(bits) if signed else 2 ** bits - 1
        step = max(amax, 1e-12) / levels
        q = np.clip(np.round(x / step), -levels if signed else 0, levels) * step
        err = float(np.mean((q - x) ** 2))
        if err < best_err:
            best, best_err = float(amax), err
    return ActRange(best, signed)


class SharedState(NamedTuple):
    """`shared`'s state: each parameter leaf's cluster codes (scalar -1: not tied)."""

    codes: list
    inner: Any


def shared(inner: optax.GradientTransformation, codes: Any, *, bits: int) -> optax.GradientTransformation:
    """Fine-tunes k-means centroids: weights that share a value get one update.

    Each cluster's gradient is the sum of its members' gradients (the gradient of the
    loss with respect to the shared value), given to every member. An element-wise
    optimizer then moves all members identically, so they stay exactly equal: this
    trains the codebook through the model's ordinary parameters. Code-0 (pruned)
    weights stay zero; leaves without codes (biases) train freely.

    Args:
      inner: the optimizer to wrap.
      codes: a tree with the parameters' keys: int32 codes for quantized kernels, a
        scalar -1 for every other leaf. Kept in the optimizer state (checkpointed with
        the run) as a list in `jax.tree.leaves` order.
      bits: the codebook size is 2^bits.
    """
    segments = 2 ** bits + 1
    code_leaves = [jnp.asarray(c, jnp.int32) for c in jax.tree.leaves(codes)]

    def tie(g, c):
        if c.ndim == 0:
            return g
        sums = jax.ops.segment_sum(g.ravel(), c.ravel(), num_segments=segments)
        return jnp.where(c == 0, 0.0, sums[c]).astype(g.dtype)

    def init(params):
        shapes = [jnp.shape(x) for x in jax.tree.leaves(params)]
        if len(shapes) != len(code_leaves) or any(
                c.ndim and c.shape != s for c, s in zip(code_leaves, shapes)):
            raise ValueError("quantization.shared: codes do not match the parameters")
        return SharedState(code_leaves, inner.init(params))

    def update(updates, state, params=None):
        grads, treedef = jax.tree.flatten(updates)
        updates = treedef.unflatten([tie(g, c) for g, c in zip(grads, state.codes)])
        updates, inner_state = inner.update(updates, state.inner, params)
        steps = [u if c.ndim == 0 else jnp.where(c == 0, -p, u)
                 for u, p, c in zip(jax.tree.leaves(updates), jax.tree.leaves(params), state.codes)]
        return treedef.unflatten(steps), SharedState(state.codes, inner_state)

    return optax.GradientTransformation(init, update)
