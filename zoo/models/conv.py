"""A 2-D convolution that trains fast on XLA's CPU backend.

XLA's CPU backend runs the gradients of a convolution as convolutions too, and the
weight gradient (a convolution whose window is the whole image) 3-10x slower than
oneDNN's (benchmarks/README.md). `conv_general_dilated` here is a drop-in for
`lax.conv_general_dilated`: evaluated, it *is* that call, so every trained weight
evaluates (and exports) bit for bit as before; differentiated on the CPU (a
`jax.custom_vjp`), it is written as matmuls, which XLA runs well: the weight gradient
always (over shifted views of the input, one matmul per kernel row or per kernel), the
input gradient where the layer has enough output channels (`input_by_matmul`), and the
forward pass itself for large kernels over many channels (`forward_by_matmul`). On GPU
and TPU, and for layouts it does not cover, it is the plain convolution with XLA's own
gradient.

`Conv(...)` builds an `nnx.Conv` that uses it: the same class, parameters and
checkpoints, so every model in zoo.models builds its convolutions with it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

# NHWC input and output, HWIO kernel: the layout nnx.Conv passes for 2-D images.
NHWC = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2))


class Geometry(NamedTuple):
    """The static shape of one convolution: hashable, so it can key a `custom_vjp`."""

    strides: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]  # explicit (low, high) per spatial axis
    dilation: tuple[int, int]  # kernel (rhs) dilation
    groups: int
    precision: Any


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                         padding: str | Sequence[tuple[int, int]],
                         lhs_dilation: Sequence[int] | None = None,
                         rhs_dilation: Sequence[int] | None = None,
                         dimension_numbers: Any = None, feature_group_count: int = 1,
                         batch_group_count: int = 1, precision: Any = None,
                         preferred_element_type: Any = None, out_sharding: Any = None) -> jax.Array:
    """`lax.conv_general_dilated`, with a matmul backward pass on the CPU (same arguments)."""
    plain = functools.partial(
        lax.conv_general_dilated, window_strides=window_strides, padding=padding,
        lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision,
        preferred_element_type=preferred_element_type, out_sharding=out_sharding)
    if (jax.default_backend() != "cpu" or lhs.ndim != 4 or batch_group_count != 1
            or preferred_element_type is not None or out_sharding is not None
            or any(d != 1 for d in (lhs_dilation or (1, 1)))
            or lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) != NHWC):
        return plain(lhs, rhs)
    dilation = tuple(rhs_dilation or (1, 1))
    window = [(k - 1) * d + 1 for k, d in zip(rhs.shape[:2], dilation)]
    pads = (lax.padtype_to_pads(lhs.shape[1:3], window, window_strides, padding)
            if isinstance(padding, str) else padding)
    geometry = Geometry(tuple(window_strides), tuple(tuple(p) for p in pads), dilation,
                        feature_group_count, precision)
    return _conv(geometry, lhs, rhs)


def Conv(in_features: int, out_features: int, kernel_size: int | Sequence[int],
         strides: int | Sequence[int] = 1, **kwargs) -> nnx.Conv:
    """`nnx.Conv(...)` whose convolution is `conv_general_dilated` above (same arguments)."""
    return nnx.Conv(in_features, out_features, kernel_size, strides,
                    conv_general_dilated=conv_general_dilated, **kwargs)


def _plain(geometry: Geometry, lhs: jax.Array, rhs: jax.Array) -> jax.Array:
    return lax.conv_general_dilated(lhs, rhs, geometry.strides, geometry.padding,
                                    rhs_dilation=geometry.dilation, dimension_numbers=NHWC,
                                    feature_group_count=geometry.groups,
                                    precision=geometry.precision)


def _pad_spatial(x: jax.Array, padding: Sequence[tuple[int, int]],
                 axes: tuple[int, int] = (1, 2)) -> jax.Array:
    """`x` with (low, high) zeros on its two spatial `axes` (NHWC's by default); negative
    crops."""
    config = [(0, 0, 0)] * x.ndim
    for axis, (low, high) in zip(axes, padding):
        config[axis] = (low, high, 0)
    return lax.pad(x, jnp.zeros((), x.dtype), config)


def _product(geometry: Geometry):
    """`jnp.einsum` at the layer's precision, accumulating in float32."""
    return functools.partial(jnp.einsum, precision=geometry.precision,
                             preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _conv(geometry: Geometry, lhs: jax.Array, rhs: jax.Array) -> jax.Array:
    return _plain(geometry, lhs, rhs)


def _conv_forward(geometry, lhs, rhs):
    # Only under differentiation: evaluation, export and serving run `_conv`, XLA's own.
    if forward_by_matmul(geometry, lhs.shape, rhs.shape):
        return matmul_forward(geometry, lhs, rhs), (lhs, rhs)
    return _plain(geometry, lhs, rhs), (lhs, rhs)


def _conv_backward(geometry, residuals, grad):
    lhs, rhs = residuals
    # Under jit, XLA drops the input gradient where nothing uses it (a first layer's).
    if input_by_matmul(geometry, grad.shape, rhs.shape):
        d_input = input_gradient(geometry, grad, rhs, lhs.shape).astype(lhs.dtype)
    else:
        _, input_vjp = jax.vjp(lambda x: _plain(geometry, x, rhs), lhs)
        d_input = input_vjp(grad)[0]
    return d_input, weight_gradient(geometry, lhs, grad, rhs.shape).astype(rhs.dtype)


_conv.defvjp(_conv_forward, _conv_backward)

# The matmul input gradient materializes [pixels, KH * KW * Cin]; above this, XLA's own.
MAX_COLUMNS_BYTES = 256 * 2**20


def input_by_matmul(geometry: Geometry, grad_shape: Sequence[int],
                    kernel_shape: Sequence[int]) -> bool:
    """Whether `input_gradient` beats XLA's transposed convolution for this layer.

    It does where its matmul contracts over at least 48 output channels per group
    (LeNet's conv2 2.5x, ResNet's 64-channel layers, the GAN generator's 1.3-1.8x), unless
    the convolution is strided with more than 9 taps (the DCGAN discriminator's 4x4 / 2:
    each tap adds a sparse, full-size piece). Fewer channels make a narrow, slow matmul
    (benchmarks/README.md has the layers and whole steps measured).
    """
    kh, kw, _, cout = kernel_shape
    return (cout // geometry.groups >= 48 and (geometry.strides == (1, 1) or kh * kw <= 9)
            and _all_taps_bytes(geometry, grad_shape, kernel_shape) <= MAX_COLUMNS_BYTES)


def _all_taps_bytes(geometry: Geometry, grad_shape: Sequence[int],
                    kernel_shape: Sequence[int]) -> int:
    """Bytes of a float32 [pixels, KH * KW * Cin] matrix: every tap's input at every output
    pixel, the columns of `input_gradient` and the patches of a one-matmul weight gradient."""
    kh, kw, cin_group, _ = kernel_shape
    return math.prod(grad_shape[:3]) * kh * kw * cin_group * geometry.groups * 4


def input_gradient(geometry: Geometry, grad: jax.Array, rhs: jax.Array,
                   input_shape: Sequence[int]) -> jax.Array:
    """d(loss)/d(input), in float32, as one matmul and a sum of shifted pieces.

    The output gradient [pixels, Cout] times the kernel [Cout, KH * KW * Cin] gives, for
    every output pixel, what each tap sends back to the input pixel it read; padding each
    tap's share to where it read (strides as interior padding) and summing makes the
    padded input's gradient, cropped to the input's.
    """
    (top, bottom), (left, right) = geometry.padding
    n, h, w, cin = input_shape
    height, width = h + top + bottom, w + left + right
    _, oh, ow, cout = grad.shape
    kh, kw, cin_group, _ = rhs.shape
    groups, (sh, sw), (dh, dw) = geometry.groups, geometry.strides, geometry.dilation
    product = _product(geometry)
    if groups == 1:  # a group axis of one would make XLA copy both operands
        columns = product("nyxo,tco->nyxtc", grad, rhs.reshape(kh * kw, cin, cout))
    else:
        columns = product("nyxgo,tcgo->nyxtgc", grad.reshape(n, oh, ow, groups, -1),
                          rhs.reshape(kh * kw, cin_group, groups, -1))
    columns = columns.reshape(n, oh, ow, kh, kw, cin)
    zero = jnp.zeros((), columns.dtype)
    total = sum(lax.pad(columns[:, :, :, i, j], zero,
                        [(0, 0, 0), (i * dh, height - i * dh - (oh - 1) * sh - 1, sh - 1),
                         (j * dw, width - j * dw - (ow - 1) * sw - 1, sw - 1), (0, 0, 0)])
                for i in range(kh) for j in range(kw))
    return _pad_spatial(total, [(-top, -bottom), (-left, -right)])


# XLA's CPU fusion takes no concatenation of more than this many operands.
MAX_FUSED_OPERANDS = 8


def stack_in_one_pass(arrays: Sequence[jax.Array], axis: int) -> jax.Array:
    """`jnp.stack(arrays, axis)`, written so that XLA's CPU backend builds it in one pass.

    A stack of more than `MAX_FUSED_OPERANDS` slices is left unfused: each slice copied,
    then all of them copied again (and nested stacks along one axis are merged back into
    one). Stacked in equal groups of at most that many, the groups on a new axis, and the
    two axes merged, it is one loop fusion: LeNet's 25 weight-gradient windows made the
    train step 1.06-1.09x faster (benchmarks/README.md). Counts with no such factor
    (a prime above it) stay one stack.
    """
    count = len(arrays)
    group = next((g for g in range(MAX_FUSED_OPERANDS, 1, -1) if count % g == 0), None)
    if count <= MAX_FUSED_OPERANDS or group is None:
        return jnp.stack(arrays, axis)
    groups = stack_in_one_pass([jnp.stack(arrays[k:k + group], axis)
                                for k in range(0, count, group)], axis)
    shape = groups.shape
    return groups.reshape(*shape[:axis], count, *shape[axis + 2:])


# The weight gradient takes all taps in one matmul where the kernel has this many or more
# and their patches fit the bytes below (LeNet's 5x5 and the DCGAN's 4x4 layers: whole
# steps 0.91-0.98x and 0.86-0.90x); per kernel row otherwise (ResNet-14's and the U-Net's
# 3x3 layers made their steps 1.03-1.20x slower all at once: their patches are large).
MIN_TAPS_AT_ONCE = 16
MAX_PATCHES_BYTES = 24 * 2**20


def weight_gradient(geometry: Geometry, lhs: jax.Array, grad: jax.Array,
                    kernel_shape: Sequence[int]) -> jax.Array:
    """d(loss)/d(kernel) [KH, KW, Cin/G, Cout], in float32, as a matmul per kernel row, or
    one for the whole kernel (`MIN_TAPS_AT_ONCE`).

    Each tap sees a strided window of the padded input; the windows of a row's KW taps
    (or of all taps) stacked ([taps * Cin, pixels]) times the output gradient ([pixels,
    Cout]) give their taps * Cin * Cout weights in one matmul. The windows are cut from a
    channel-major copy of the input, so they come out in the layout the matmul reads (cut
    from NHWC, XLA copied each row's patches to transpose them: 1.1-2.4x slower,
    benchmarks/README.md).
    """
    n, oh, ow, cout = grad.shape
    kh, kw, cin_group, _ = kernel_shape
    groups, (sh, sw), (dh, dw) = geometry.groups, geometry.strides, geometry.dilation
    all_at_once = (kh * kw >= MIN_TAPS_AT_ONCE
                   and _all_taps_bytes(geometry, grad.shape, kernel_shape) <= MAX_PATCHES_BYTES)
    rows_at_once = kh if all_at_once else 1
    # Transposed, then padded: XLA makes the padded channel-major copy once and the
    # windows read it row by row (padded first, it folded the transposition into each
    # window's copy, reading across channels: train steps of ResNet-14 0.90-0.92x, the
    # GAN 0.91x, the CRNN 0.96x).
    channels = _pad_spatial(jnp.transpose(lhs, (3, 0, 1, 2)), geometry.padding, axes=(2, 3))
    channels = channels.reshape(groups, cin_group, n, *channels.shape[2:])
    g = jnp.transpose(grad.reshape(-1, groups, cout // groups), (1, 0, 2))  # [G, pixels, Cout/G]
    blocks = []
    # Strided windows stay separate copies: built in one pass, the DCGAN discriminator's
    # 4x4 / 2 layer was faster alone but its train step 1.10-1.16x slower
    # (benchmarks/README.md).
    stack = stack_in_one_pass if geometry.strides == (1, 1) else jnp.stack
    for first in range(0, kh, rows_at_once):
        windows = [lax.slice(channels, (0, 0, 0, i * dh, j * dw),
                             (groups, cin_group, n, i * dh + (oh - 1) * sh + 1,
                              j * dw + (ow - 1) * sw + 1), (1, 1, 1, sh, sw))
                   for i in range(first, first + rows_at_once) for j in range(kw)]
        patches = stack(windows, axis=1).reshape(groups, len(windows) * cin_group, -1)
        block = lax.dot_general(patches, g, (((2,), (1,)), ((0,), (0,))),  # [G, taps*Cin/G, Cout/G]
                                precision=geometry.precision,
                                preferred_element_type=jnp.float32)
        block = block.reshape(groups, rows_at_once, kw, cin_group, cout // groups)
        blocks.append(jnp.transpose(block, (1, 2, 3, 0, 4)).reshape(rows_at_once, kw,
                                                                     cin_group, cout))
    return jnp.concatenate(blocks)


# The training forward takes a matmul over shifted views where the kernel has this many
# input channels or more and `MIN_TAPS_AT_ONCE` taps (above).
MIN_FORWARD_CHANNELS = 16


def forward_by_matmul(geometry: Geometry, input_shape: Sequence[int],
                      kernel_shape: Sequence[int]) -> bool:
    """Whether `matmul_forward` beats XLA's convolution for this layer.

    It does for a large kernel over many channels (LeNet's conv2, 5x5 over 20: whole
    training steps 0.88-0.94x); with one input channel (LeNet's conv1) the matmul is too
    narrow (1.2-1.3x slower), and ResNet's 3x3 layers were 1.04x slower. Strided layers
    would waste the rows the stride skips.
    """
    kh, kw, cin_group, cout = kernel_shape
    n, h, w, _ = input_shape
    (top, bottom), (left, right) = geometry.padding
    # The matmul's output [N, H, OW, KH, Cout], OW at most the padded width:
    rows_bytes = n * (h + top + bottom) * (w + left + right) * kh * cout * 4
    return (geometry.strides == (1, 1) and kh * kw >= MIN_TAPS_AT_ONCE
            and cin_group >= MIN_FORWARD_CHANNELS and rows_bytes <= MAX_COLUMNS_BYTES)


def matmul_forward(geometry: Geometry, lhs: jax.Array, rhs: jax.Array) -> jax.Array:
    """The convolution as one matmul over the input's KW column-shifted views.

    The views stacked ([N, H, OW, KW * Cin]) times the kernel ([KW * Cin, KH * Cout]) give,
    for every input row, what it contributes through each kernel row; output row y sums
    kernel row i's share of input row y + i (strides and dilation as slice steps). Its
    result equals XLA's to float32 rounding, not bit for bit.
    """
    padded = _pad_spatial(lhs, geometry.padding)
    n, height, width, cin = padded.shape
    kh, kw, cin_group, cout = rhs.shape
    groups, (sh, sw), (dh, dw) = geometry.groups, geometry.strides, geometry.dilation
    oh, ow = (height - (kh - 1) * dh - 1) // sh + 1, (width - (kw - 1) * dw - 1) // sw + 1
    views = stack_in_one_pass([lax.slice(padded, (0, 0, j * dw, 0),
                                         (n, height, j * dw + (ow - 1) * sw + 1, cin),
                                         (1, 1, sw, 1))
                               for j in range(kw)], axis=3)  # [N, H, OW, KW, Cin]
    product = _product(geometry)
    if groups == 1:
        rows = product("nyxjc,ijco->nyxio", views, rhs)
    else:
        rows = product("nyxjgc,ijcgo->nyxigo", views.reshape(n, height, ow, kw, groups, -1),
                       rhs.reshape(kh, kw, cin_group, groups, -1))
    rows = rows.reshape(n, height, ow, kh, cout)
    out = sum(lax.slice(rows, (0, i * dh, 0, i, 0),
                        (n, i * dh + (oh - 1) * sh + 1, ow, i + 1, cout), (1, sh, 1, 1, 1))
              for i in range(kh))
    return out.reshape(n, oh, ow, cout).astype(jnp.result_type(lhs, rhs))
