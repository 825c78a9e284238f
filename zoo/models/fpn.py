"""A feature pyramid network (FPN) over any backbone's stage maps, and an FCN
segmentation head on it: the dense-prediction necks for the ImageNet backbones.

FPN (Lin et al. 2017): a 1x1 lateral convolution brings every stage to one width; from
the coarsest down, each level adds the nearest-upsampled level above; a 3x3
convolution smooths the sum. Detection reads one level; segmentation reads the finest
(stride 4), classifies each cell with an FCN head and upsamples bilinearly.
"""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.models.torch_layers import batch_norm, conv
from zoo.models.unet import upsample_to


class FPN(nnx.Module):
    """Returns the pyramid level `stop` (the stride of backbone stage `stop`), `width`
    channels."""

    def __init__(self, channels: Sequence[int], width: int, *, stop: int = 0,
                 dtype: Any = jnp.float32, rngs: nnx.Rngs):
        self.stop = stop
        self.lateral = nnx.List([conv(c, width, 1, bias=True, dtype=dtype, rngs=rngs)
                                 for c in channels[stop:]])
        self.smooth = conv(width, width, 3, bias=True, dtype=dtype, rngs=rngs)

    def __call__(self, features: Sequence[jax.Array]) -> jax.Array:
        x = None
        for lateral, feature in reversed(list(zip(self.lateral, features[self.stop:]))):
            y = lateral(feature)
            x = y if x is None else y + upsample_to(x, y)
        return self.smooth(x)


class FPNSegmenter(nnx.Module):
    """Per-pixel class logits (N, H, W, classes): backbone, FPN at stride 4, an FCN head
    (3x3 conv-BN-ReLU, 1x1 classifier), bilinear upsampling to the input size."""

    def __init__(self, backbone: nnx.Module, num_classes: int, *, width: int = 128,
                 dtype: Any = jnp.float32, rngs: nnx.Rngs):
        self.backbone = backbone
        self.decoder = FPN(backbone.channels, width, dtype=dtype, rngs=rngs)
        self.conv = conv(width, width, 3, dtype=dtype, rngs=rngs)
        self.bn = batch_norm(width, dtype=dtype, rngs=rngs)
        self.classifier = conv(width, num_classes, 1, bias=True, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.decoder(self.backbone(x))
        logits = self.classifier(jax.nn.relu(self.bn(self.conv(y))))
        n, h, w, _ = x.shape
        return jax.image.resize(logits, (n, h, w, logits.shape[-1]), "bilinear").astype(jnp.float32)
