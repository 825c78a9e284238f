"""Dense prediction on the shared ResNet backbone: a U-Net decoder with skip connections.

The encoder is `ResNetBackbone` (the classifier's blocks, not a copy); the decoder climbs
back up its stages, upsampling by two and concatenating each stage's features, so a
per-pixel prediction sees both fine detail and the wide context that tells digits apart.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.models.activations import get_activation
from zoo.models.conv import Conv
from zoo.models.resnet import ResNetBackbone


def upsample_to(x: jax.Array, like: jax.Array) -> jax.Array:
    """Nearest-neighbour upsampling of NHWC `x` to the spatial size of `like`, by the whole
    factor that covers it (2 between adjacent stages), cropping any odd overhang."""
    factor = -(-like.shape[1] // x.shape[1])
    x = jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)
    return x[:, : like.shape[1], : like.shape[2]]


class ConvBN(nnx.Module):
    """3x3 convolution, batch norm, activation."""

    def __init__(self, cin: int, cout: int, act, *, rngs: nnx.Rngs):
        self.act = act
        self.conv = Conv(cin, cout, (3, 3), use_bias=False, rngs=rngs)
        self.bn = nnx.BatchNorm(cout, momentum=0.9, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.act(self.bn(self.conv(x)))


class UNetDecoder(nnx.Module):
    """Upsamples from the deepest stage to stage `stop`, fusing each skip on the way.

    Returns the finest fused map: `widths[stop]` channels at the resolution of backbone
    stage `stop` (the coarsest features themselves when there is nothing to fuse).
    """

    def __init__(self, widths: Sequence[int], act, *, stop: int = 0, rngs: nnx.Rngs):
        self.stop = stop
        self.fuse = nnx.List([ConvBN(widths[i + 1] + widths[i], widths[i], act, rngs=rngs)
                              for i in range(len(widths) - 2, stop - 1, -1)])

    def __call__(self, features: Sequence[jax.Array]) -> jax.Array:
        x = features[-1]
        skips = [features[i] for i in range(len(features) - 2, self.stop - 1, -1)]
        for fuse, skip in zip(self.fuse, skips):
            x = fuse(jnp.concatenate([upsample_to(x, skip), skip], axis=-1))
        return x


class UNet(nnx.Module):
    """Per-pixel class logits (N, H, W, num_classes) for NHWC images of any size.

    With `stem_stride=2` the encoder starts at half resolution (about 3x less compute);
    a last full-resolution layer then sees the upsampled features beside the input
    pixels themselves, so boundaries stay pixel-sharp.
    """

    def __init__(self, in_channels: int, num_classes: int, *, widths: Sequence[int] = (16, 32, 64),
                 blocks: int = 1, stem_stride: int = 1, activation: str = "relu", rngs: nnx.Rngs):
        act = get_activation(activation)
        self.encoder = ResNetBackbone(in_channels, widths=widths, blocks=blocks,
                                      stem_stride=stem_stride, activation=activation, rngs=rngs)
        self.decoder = UNetDecoder(widths, act, rngs=rngs)
        self.refine = (ConvBN(widths[0] + in_channels, widths[0], act, rngs=rngs)
                       if stem_stride > 1 else None)
        self.head = Conv(widths[0], num_classes, (1, 1), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        features = self.encoder(x)
        y = self.decoder(features)
        if self.refine is not None:
            y = self.refine(jnp.concatenate([upsample_to(y, x), x], axis=-1))
        return self.head(y)

