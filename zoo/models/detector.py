"""A CenterNet-style single-stage detector on the shared ResNet backbone.

The U-Net decoder (shared with segmentation) brings the backbone's deepest stage back
up to the resolution of stage `level`, stride `stem_stride * 2 ** level`; there three
small heads predict, per cell, a heatmap logit per class (object centres), the
sub-cell offset of the centre and the box size. What those maps mean (targets, loss,
decoding) belongs to the task.
"""

import math
from collections.abc import Sequence

import jax
from flax import nnx

from zoo.errors import ZooError
from zoo.models.activations import get_activation
from zoo.models.conv import Conv
from zoo.models.resnet import ResNetBackbone
from zoo.models.unet import ConvBN, UNetDecoder

PRIOR = 0.01  # initial centre probability: keeps the many empty cells from swamping early training


class CenterNet(nnx.Module):
    """Maps NHWC images to {"heatmap": (N, h, w, C) logits, "offset": (N, h, w, 2),
    "size": (N, h, w, 2)} at stride `self.stride`."""

    def __init__(self, in_channels: int, num_classes: int, *,
                 widths: Sequence[int] = (16, 32, 64, 128), blocks: int = 1, level: int = 2,
                 stem_stride: int = 1, head_width: int = 64, activation: str = "relu",
                 rngs: nnx.Rngs):
        if not 0 <= level < len(widths):
            raise ZooError(f"level {level}: the heads need a backbone stage, "
                           f"0..{len(widths) - 1} (--set level=N)")
        act = get_activation(activation)
        self.stride = stem_stride * 2 ** level
        self.backbone = ResNetBackbone(in_channels, widths=widths, blocks=blocks,
                                       stem_stride=stem_stride, activation=activation, rngs=rngs)
        self.decoder = UNetDecoder(widths, act, stop=level, rngs=rngs)
        self.neck = ConvBN(widths[level], head_width, act, rngs=rngs)
        bias = nnx.initializers.constant(-math.log((1 - PRIOR) / PRIOR))
        self.heatmap = Conv(head_width, num_classes, (1, 1), bias_init=bias, rngs=rngs)
        self.offset = Conv(head_width, 2, (1, 1), rngs=rngs)
        self.size = Conv(head_width, 2, (1, 1), rngs=rngs)

    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        return self.heads(self.features(x))

    def features(self, x: jax.Array) -> jax.Array:
        """The (N, h, w, head_width) map the heads read, at stride `self.stride`: models
        built on CenterNet add heads of their own on it."""
        return self.neck(self.decoder(self.backbone(x)))

    def heads(self, y: jax.Array) -> dict[str, jax.Array]:
        return {"heatmap": self.heatmap(y), "offset": self.offset(y), "size": self.size(y)}
