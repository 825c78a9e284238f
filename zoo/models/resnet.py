"""A small pre-activation-free ResNet for 32x32+ colour images, and its backbone.

The backbone returns the feature map of every stage, so dense-prediction heads
(segmentation, detection) reuse it instead of keeping a private copy.
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.models.activations import get_activation
from zoo.models.conv import Conv
from zoo.models.layers import global_avg_pool


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    """The backbone of a dense model, as a config section (`--set backbone.width=32`).

    `name` "resnet" is the small `ResNetBackbone` the other fields shape; any ImageNet
    family (`zoo.models.IMAGENET`) is used as it is, under an FPN.
    """

    name: str = "resnet"  # resnet (small, below) or resnet18|34|50|101, vit-s16|b16, mobilenetv3-large
    fpn_width: int = 128  # channels of the FPN over an ImageNet backbone
    width: int = 16  # channels of the first stage; each later stage doubles them
    stages: int = 4  # stages; each after the first halves the resolution
    blocks: int = 1  # residual blocks per stage
    stem_stride: int = 2  # 2: start at half resolution (about 3x less compute)
    activation: str = "relu"  # see zoo.models.ACTIVATIONS

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the small `ResNetBackbone` and the models built on it."""
        return {"widths": tuple(self.width * 2 ** i for i in range(self.stages)),
                "blocks": self.blocks, "stem_stride": self.stem_stride,
                "activation": self.activation}


class ResidualBlock(nnx.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, act, *, dtype: Any = jnp.float32,
                 rngs: nnx.Rngs):
        self.act = act
        self.conv1 = Conv(cin, cout, (3, 3), strides=stride, use_bias=False, dtype=dtype,
                              rngs=rngs)
        self.bn1 = nnx.BatchNorm(cout, momentum=0.9, dtype=dtype, rngs=rngs)
        self.conv2 = Conv(cout, cout, (3, 3), use_bias=False, dtype=dtype, rngs=rngs)
        self.bn2 = nnx.BatchNorm(cout, momentum=0.9, scale_init=nnx.initializers.zeros,
                                 dtype=dtype, rngs=rngs)
        self.project = (Conv(cin, cout, (1, 1), strides=stride, use_bias=False,
                                 dtype=dtype, rngs=rngs)
                        if stride != 1 or cin != cout else None)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = self.project(x) if self.project is not None else x
        return self.act(y + shortcut)


class ResNetBackbone(nnx.Module):
    """Stem plus stages; stage i (i > 0) halves the resolution. Returns every stage's map.

    Layers compute in `dtype` (parameters and batch statistics stay float32).
    `stem_stride=2` halves the resolution in the stem already: about 4x less compute in
    the first stage, for inputs larger than their objects' detail needs.
    """

    def __init__(self, in_channels: int, *, widths: Sequence[int] = (16, 32, 64),
                 blocks: int = 2, activation: str = "relu", stem_stride: int = 1,
                 dtype: Any = jnp.float32,
                 rngs: nnx.Rngs):
        act = get_activation(activation)
        self.act = act
        self.widths = tuple(widths)
        self.stem = Conv(in_channels, widths[0], (3, 3), strides=stem_stride,
                             use_bias=False, dtype=dtype, rngs=rngs)
        self.stem_bn = nnx.BatchNorm(widths[0], momentum=0.9, dtype=dtype, rngs=rngs)
        stages, cin = [], widths[0]
        for i, width in enumerate(widths):
            stage = [ResidualBlock(cin if j == 0 else width, width,
                                   2 if (i > 0 and j == 0) else 1, act, dtype=dtype,
                                   rngs=rngs)
                     for j in range(blocks)]
            stages.append(nnx.List(stage))
            cin = width
        self.stages = nnx.List(stages)

    def __call__(self, x: jax.Array) -> list[jax.Array]:
        x = self.act(self.stem_bn(self.stem(x)))
        features = []
        for stage in self.stages:
            for block in stage:
                x = block(x)
            features.append(x)
        return features


class ResNet(nnx.Module):
    """ResNet classifier: backbone, global average pool, linear head (float32 logits)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, *,
                 activation: str = "relu", widths: Sequence[int] = (16, 32, 64),
                 blocks: int = 2, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        self.backbone = ResNetBackbone(input_shape[-1], widths=widths, blocks=blocks,
                                       activation=activation, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(widths[-1], num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(global_avg_pool(self.backbone(x)[-1])).astype(jnp.float32)
