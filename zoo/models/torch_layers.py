"""Layers that compute exactly as PyTorch's, so timm and torchvision weights load by name.

PyTorch pads a k x k convolution by k // 2 on every side; Flax's "SAME" pads a stride-2
convolution of an even-sized input asymmetrically (one row more at the bottom), which
shifts every output by half a pixel. Batch norm keeps PyTorch's epsilon 1e-5, and its
momentum 0.1 is Flax's 0.9 (Flax names the weight of the old statistic).

Every convolution of the ImageNet families is built by `conv`, on `zoo.models.conv.Conv`
(XLA's forward convolution, with a fast weight gradient on the CPU).
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.models.conv import Conv

TORCH_BN_EPSILON = 1e-5
TORCH_BN_MOMENTUM = 0.9  # = 1 - torch's momentum 0.1
HE_FAN_OUT = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")  # timm/torchvision


def conv(cin: int, cout: int, kernel: int, *, stride: int = 1, groups: int = 1,
         bias: bool = False, padding: Any = None, dtype: Any = jnp.float32,
         rngs: nnx.Rngs) -> nnx.Conv:
    """A k x k convolution padded like PyTorch's `padding=k // 2` (or `padding` given)."""
    pad = ((kernel // 2, kernel // 2),) * 2 if padding is None else padding
    return Conv(cin, cout, (kernel, kernel), strides=stride, padding=pad,
                feature_group_count=groups, use_bias=bias, kernel_init=HE_FAN_OUT,
                dtype=dtype, rngs=rngs)


def batch_norm(channels: int, *, zero_scale: bool = False, dtype: Any = jnp.float32,
               rngs: nnx.Rngs) -> nnx.BatchNorm:
    """Batch norm with PyTorch's epsilon and momentum; `zero_scale` starts a residual
    branch at zero (timm's `zero_init_last`)."""
    init = nnx.initializers.zeros if zero_scale else nnx.initializers.ones
    return nnx.BatchNorm(channels, momentum=TORCH_BN_MOMENTUM, epsilon=TORCH_BN_EPSILON,
                         scale_init=init, dtype=dtype, rngs=rngs)


def max_pool_3x3_s2(x: jax.Array) -> jax.Array:
    """PyTorch's `MaxPool2d(3, stride=2, padding=1)` on NHWC.

    The maximum of nine strided slices rather than `lax.reduce_window`, whose gradient
    (select-and-scatter) XLA's CPU backend runs several times slower.
    """
    n, h, w, c = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
    oh, ow = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    slices = (padded[:, i:i + 2 * oh - 1:2, j:j + 2 * ow - 1:2, :]
              for i in range(3) for j in range(3))
    return functools.reduce(jnp.maximum, slices)
