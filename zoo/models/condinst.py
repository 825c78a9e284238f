"""CondInst: CenterNet plus one dynamic mask network per object (Tian et al., 2020,
"Conditional Convolutions for Instance Segmentation").

Beside CenterNet's heatmap, offset and size maps, a controller generates from the head
features at a cell the weights of a tiny per-object network of 1x1 convolutions, and a
mask branch brings the head features, reduced, back to input resolution beside the input
pixels. The network generated at an object's centre cell, applied to those features plus
each pixel's coordinates relative to that cell, gives the object's mask logits. Everything is
convolutional with a fixed number of objects per image: no box-dependent crops.
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.models.conv import Conv
from zoo.models.detector import CenterNet, box_heads

COORD_SCALE = 16.0  # pixels per unit of the relative coordinates fed to the mask networks


def dynamic_layer_shapes(channels: int, hidden: int, layers: int) -> list[tuple[int, int]]:
    """(inputs, outputs) of each 1x1 convolution of a mask network: `channels` features
    plus two relative coordinates in, `hidden` channels between, one logit out."""
    sizes = [channels + 2] + [hidden] * (layers - 1) + [1]
    return list(zip(sizes[:-1], sizes[1:]))


def dynamic_masks(features: jax.Array, params: jax.Array, centres: jax.Array, *,
                  hidden: int, layers: int) -> jax.Array:
    """Mask logits (B, K, H, W) of K objects per image.

    Args:
      features: (B, H, W, C) mask features at full resolution.
      params: (B, K, P) each object's flattened weights and biases, layer by layer
        (`dynamic_layer_shapes`); weights are scaled by 1/sqrt(inputs), so the controller
        needs no special initialisation.
      centres: (B, K, 2) pixel (x, y) each object's relative coordinates are taken from.
    """
    _, h, w, c = features.shape
    shapes = dynamic_layer_shapes(c, hidden, layers)
    weights, biases, start = [], [], 0
    for cin, cout in shapes:
        kernel = params[..., start:start + cin * cout] / math.sqrt(cin)
        weights.append(kernel.reshape(*params.shape[:2], cin, cout))
        biases.append(params[..., start + cin * cout:start + (cin + 1) * cout])
        start += (cin + 1) * cout
    rel_x = (jnp.arange(w)[None, None] + 0.5 - centres[..., 0, None]) / COORD_SCALE  # (B, K, W)
    rel_y = (jnp.arange(h)[None, None] + 0.5 - centres[..., 1, None]) / COORD_SCALE  # (B, K, H)
    w0 = weights[0]
    x = (jnp.einsum("bhwc,bkcd->bkhwd", features, w0[:, :, :c])
         + rel_x[:, :, None, :, None] * w0[:, :, None, None, c]
         + rel_y[:, :, :, None, None] * w0[:, :, None, None, c + 1]
         + biases[0][:, :, None, None, :])
    for kernel, bias in zip(weights[1:], biases[1:]):
        x = jnp.einsum("bkhwc,bkcd->bkhwd", jax.nn.relu(x), kernel) + bias[:, :, None, None, :]
    return x[..., 0]


class CondInst(nnx.Module):
    """Maps NHWC images to CenterNet's maps plus "features" (N, h, w, head_width), what the
    heads read at each cell, and "mask_features" (N, H, W, mask_channels) at input
    resolution.

    `masks(mask_features, features, centres)` generates the mask networks of objects from
    their cells' `features` (the controller runs only there, not on every cell) and
    returns their mask logits.
    """

    def __init__(self, in_channels: int, num_classes: int, *,
                 widths: Sequence[int] = (16, 32, 64, 128), blocks: int = 1, level: int = 0,
                 stem_stride: int = 2, head_width: int = 64, mask_channels: int = 8,
                 mask_hidden: int = 8, mask_layers: int = 3, activation: str = "relu",
                 rngs: nnx.Rngs):
        self.detector = CenterNet(in_channels, box_heads(num_classes), widths=widths,
                                  blocks=blocks, level=level, stem_stride=stem_stride,
                                  head_width=head_width, activation=activation, rngs=rngs)
        self.stride = self.detector.stride
        self.mask_hidden, self.mask_layers = mask_hidden, mask_layers
        shapes = dynamic_layer_shapes(mask_channels + in_channels, mask_hidden, mask_layers)
        count = sum((cin + 1) * cout for cin, cout in shapes)
        self.controller = nnx.Linear(head_width, count, rngs=rngs)
        self.mask_reduce = Conv(head_width, mask_channels, (1, 1), rngs=rngs)

    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        y = self.detector.features(x)
        coarse = self.mask_reduce(y)
        coarse = jax.image.resize(coarse, (*x.shape[:3], coarse.shape[-1]), "bilinear")
        # Beside the pixels themselves, so a mask can follow the ink exactly.
        return {**self.detector.heads(y), "features": y,
                "mask_features": jnp.concatenate([coarse, x.astype(coarse.dtype)], -1)}

    def masks(self, mask_features: jax.Array, features: jax.Array,
              centres: jax.Array) -> jax.Array:
        """(B, K, H, W) mask logits of K objects per image, from their cells' head
        `features` (B, K, head_width), with coordinates relative to pixel `centres`
        (B, K, 2) as (x, y)."""
        return dynamic_masks(mask_features, self.controller(features), centres,
                             hidden=self.mask_hidden, layers=self.mask_layers)
