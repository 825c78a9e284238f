"""MobileNetV3-Large in timm's `mobilenetv3_large_100` layout: the efficient CNN for
small devices (5.5 M parameters, 0.22 GFLOPs at 224x224).

Stages are timm's (`blocks.S.I`): a depthwise-separable block, then inverted residuals
(1x1 expand, kxk depthwise, optional squeeze-excite, 1x1 project), then a 1x1 conv to
960 channels. The head is timm's too: global pool, a biased 1x1 `conv_head` to 1280,
hard-swish, `classifier`. Module names follow timm's so its weights convert by name.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.models.torch_layers import batch_norm, conv

Activation = Callable[[jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One inverted residual: kernel, stride, expansion ratio, output channels, SE, hard-swish."""

    kernel: int
    stride: int
    expand: float
    out: int
    se: bool
    hswish: bool


def _ir(kernel, stride, expand, out, se=False, hswish=False, repeat=1) -> list[BlockSpec]:
    return [BlockSpec(kernel, stride if i == 0 else 1, expand, out, se, hswish)
            for i in range(repeat)]


# timm's arch_def for 'large' (stage 0 and 6 are the ds and cn blocks, built apart).
LARGE_STAGES = (
    _ir(3, 2, 4, 24) + _ir(3, 1, 3, 24),
    _ir(5, 2, 3, 40, se=True, repeat=3),
    _ir(3, 2, 6, 80, hswish=True) + _ir(3, 1, 2.5, 80, hswish=True)
    + _ir(3, 1, 2.3, 80, hswish=True, repeat=2),
    _ir(3, 1, 6, 112, se=True, hswish=True, repeat=2),
    _ir(5, 2, 6, 160, se=True, hswish=True, repeat=3),
)
STEM, LAST, HEAD = 16, 960, 1280


def make_divisible(value: float, divisor: int = 8) -> int:
    """timm's channel rounding: to a multiple of 8, never more than 10% down."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _act(hswish: bool) -> Activation:
    return jax.nn.hard_swish if hswish else jax.nn.relu


class SqueezeExcite(nnx.Module):
    """Channel gate: pooled 1x1 reduce, ReLU, 1x1 expand, hard sigmoid."""

    def __init__(self, channels: int, *, dtype: Any, rngs: nnx.Rngs):
        reduced = make_divisible(channels * 0.25)
        self.conv_reduce = conv(channels, reduced, 1, bias=True, dtype=dtype, rngs=rngs)
        self.conv_expand = conv(reduced, channels, 1, bias=True, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        s = jnp.mean(x, axis=(1, 2), keepdims=True)
        s = self.conv_expand(jax.nn.relu(self.conv_reduce(s)))
        return x * jax.nn.hard_sigmoid(s)


class DepthwiseSeparable(nnx.Module):
    """Stage 0: 3x3 depthwise, 1x1 pointwise, identity shortcut (timm's `ds` block)."""

    def __init__(self, channels: int, *, dtype: Any, rngs: nnx.Rngs):
        self.conv_dw = conv(channels, channels, 3, groups=channels, dtype=dtype, rngs=rngs)
        self.bn1 = batch_norm(channels, dtype=dtype, rngs=rngs)
        self.conv_pw = conv(channels, channels, 1, dtype=dtype, rngs=rngs)
        self.bn2 = batch_norm(channels, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jax.nn.relu(self.bn1(self.conv_dw(x)))
        return x + self.bn2(self.conv_pw(y))


class InvertedResidual(nnx.Module):
    """1x1 expand, kxk depthwise (with the stride), optional SE, 1x1 project."""

    def __init__(self, cin: int, spec: BlockSpec, *, dtype: Any, rngs: nnx.Rngs):
        mid = make_divisible(cin * spec.expand)
        self.act = _act(spec.hswish)
        self.skip = spec.stride == 1 and cin == spec.out
        self.conv_pw = conv(cin, mid, 1, dtype=dtype, rngs=rngs)
        self.bn1 = batch_norm(mid, dtype=dtype, rngs=rngs)
        self.conv_dw = conv(mid, mid, spec.kernel, stride=spec.stride, groups=mid, dtype=dtype,
                            rngs=rngs)
        self.bn2 = batch_norm(mid, dtype=dtype, rngs=rngs)
        self.se = SqueezeExcite(mid, dtype=dtype, rngs=rngs) if spec.se else None
        self.conv_pwl = conv(mid, spec.out, 1, dtype=dtype, rngs=rngs)
        self.bn3 = batch_norm(spec.out, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.act(self.bn1(self.conv_pw(x)))
        y = self.act(self.bn2(self.conv_dw(y)))
        if self.se is not None:
            y = self.se(y)
        y = self.bn3(self.conv_pwl(y))
        return x + y if self.skip else y


class ConvBnAct(nnx.Module):
    """Stage 6: 1x1 conv, batch norm, hard-swish (timm's `cn` block)."""

    def __init__(self, cin: int, cout: int, *, dtype: Any, rngs: nnx.Rngs):
        self.conv = conv(cin, cout, 1, dtype=dtype, rngs=rngs)
        self.bn1 = batch_norm(cout, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.hard_swish(self.bn1(self.conv(x)))


class MobileNetV3Backbone(nnx.Module):
    """Stem and the seven stages; returns the maps at strides 4, 8, 16 and 32."""

    def __init__(self, input_shape: Sequence[int], *, dtype: Any = jnp.float32,
                 rngs: nnx.Rngs):
        self.conv_stem = conv(input_shape[-1], STEM, 3, stride=2, dtype=dtype, rngs=rngs)
        self.bn1 = batch_norm(STEM, dtype=dtype, rngs=rngs)
        stages, cin = [nnx.List([DepthwiseSeparable(STEM, dtype=dtype, rngs=rngs)])], STEM
        for specs in LARGE_STAGES:
            blocks = []
            for spec in specs:
                blocks.append(InvertedResidual(cin, spec, dtype=dtype, rngs=rngs))
                cin = spec.out
            stages.append(nnx.List(blocks))
        stages.append(nnx.List([ConvBnAct(cin, LAST, dtype=dtype, rngs=rngs)]))
        self.blocks = nnx.List(stages)
        self.taps = (1, 2, 4, 6)  # stages ending at strides 4, 8, 16, 32
        self.channels = (24, 40, 112, LAST)
        self.strides = (4, 8, 16, 32)

    def __call__(self, x: jax.Array) -> list[jax.Array]:
        x = jax.nn.hard_swish(self.bn1(self.conv_stem(x)))
        features = []
        for i, stage in enumerate(self.blocks):
            for block in stage:
                x = block(x)
            if i in self.taps:
                features.append(x)
        return features


class MobileNetV3(nnx.Module):
    """MobileNetV3-Large classifier with timm's head (`conv_head`, `classifier`)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, *,
                 dtype: Any = jnp.float32, rngs: nnx.Rngs):
        self.backbone = MobileNetV3Backbone(input_shape, dtype=dtype, rngs=rngs)
        self.conv_head = conv(LAST, HEAD, 1, bias=True, dtype=dtype, rngs=rngs)
        self.classifier = nnx.Linear(HEAD, num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        pooled = jnp.mean(self.backbone(x)[-1], axis=(1, 2), keepdims=True)
        y = jax.nn.hard_swish(self.conv_head(pooled))
        return self.classifier(y[:, 0, 0]).astype(jnp.float32)
