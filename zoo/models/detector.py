"""A CenterNet-style dense predictor on the shared ResNet backbone.

The U-Net decoder (shared with segmentation) brings the backbone's deepest stage back
up to the resolution of stage `level`, stride `stem_stride * 2 ** level`; there one
shared 3x3 layer feeds a 1x1 head per named output: heatmap logits (points such as
object centres or joints, started at a low prior probability) and regressed values
(offsets, sizes). Detection asks for `box_heads` (a heatmap per class, centre offset,
box size); pose for person centres, joints and their offsets. What those maps mean
(targets, loss, decoding) belongs to the task.
"""

import math
from collections.abc import Mapping, Sequence

import jax
from flax import nnx

from zoo.errors import ZooError
from zoo.models.activations import get_activation
from zoo.models.conv import Conv
from zoo.models.fpn import FPN
from zoo.models.resnet import ResNetBackbone
from zoo.models.unet import ConvBN, UNetDecoder

PRIOR = 0.01  # initial point probability: keeps the many empty cells from swamping early training


def box_heads(num_classes: int) -> dict[str, int]:
    """A detector's heads: a centre heatmap per class, the centre's offset, the box size."""
    return {"heatmap": num_classes, "offset": 2, "size": 2}


class CenterNet(nnx.Module):
    """Maps NHWC images to {name: (N, h, w, channels)} for each of `heads`, at stride
    `self.stride`. Heads named in `heatmaps` start at probability `PRIOR`.

    Each head is an attribute of its own name, so its weights are addressed as
    `NAME/kernel` whatever other heads exist.
    """

    def __init__(self, in_channels: int, heads: Mapping[str, int], *,
                 heatmaps: Sequence[str] = ("heatmap",), widths: Sequence[int] = (16, 32, 64, 128),
                 blocks: int = 1, level: int = 2,
                 stem_stride: int = 1, head_width: int = 64, activation: str = "relu",
                 backbone: nnx.Module | None = None, fpn_width: int = 128, rngs: nnx.Rngs):
        """With `backbone` (an ImageNet family's, see `zoo.models.create_backbone`) an FPN
        replaces the U-Net decoder and `level` indexes the backbone's strides."""
        act = get_activation(activation)
        stages = len(widths) if backbone is None else len(backbone.strides)
        if not 0 <= level < stages:
            raise ZooError(f"level {level}: the heads need a backbone stage, "
                           f"0..{stages - 1} (--set level=N)")
        if backbone is None:
            self.stride = stem_stride * 2 ** level
            self.backbone = ResNetBackbone(in_channels, widths=widths, blocks=blocks,
                                           stem_stride=stem_stride, activation=activation,
                                           rngs=rngs)
            self.decoder = UNetDecoder(widths, act, stop=level, rngs=rngs)
            neck_width = widths[level]
        else:
            self.stride = backbone.strides[level]
            self.backbone = backbone
            self.decoder = FPN(backbone.channels, fpn_width, stop=level, rngs=rngs)
            neck_width = fpn_width
        self.neck = ConvBN(neck_width, head_width, act, rngs=rngs)
        prior = nnx.initializers.constant(-math.log((1 - PRIOR) / PRIOR))
        self.head_names = tuple(heads)
        for name, channels in heads.items():
            init = {"bias_init": prior} if name in heatmaps else {}
            setattr(self, name, Conv(head_width, channels, (1, 1), **init, rngs=rngs))

    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        return self.heads(self.features(x))

    def features(self, x: jax.Array) -> jax.Array:
        """The (N, h, w, head_width) map the heads read, at stride `self.stride`: models
        built on CenterNet add heads of their own on it."""
        return self.neck(self.decoder(self.backbone(x)))

    def heads(self, y: jax.Array) -> dict[str, jax.Array]:
        return {name: getattr(self, name)(y) for name in self.head_names}
