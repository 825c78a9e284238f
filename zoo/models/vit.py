"""Vision Transformers ViT-S/16 and ViT-B/16 in timm's layout.

timm's `VisionTransformer`: a 16x16/16 patch convolution, a class token, learned
position embeddings, pre-norm blocks (LayerNorm eps 1e-6, one fused `qkv` Linear,
exact erf GELU in the MLP), a final norm, and the class token into `head`. Module
names follow timm's (`patch_embed.proj`, `blocks.0.attn.qkv`, `norm`, `head`), so its
state dicts convert by name. As a dense backbone the patch tokens form one stride-16
map, pooled and upsampled into a four-level pyramid (ViTDet's simple pyramid, here
without parameters).
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.models.layers import max_pool_2x2
from zoo.models.torch_layers import conv

LN_EPSILON = 1e-6
PATCH = 16
TRUNC_NORMAL = nnx.initializers.truncated_normal(0.02)


@dataclasses.dataclass(frozen=True)
class ViTSpec:
    width: int
    depth: int
    heads: int
    mlp_ratio: int = 4


VITS = {
    "vit-s16": ViTSpec(width=384, depth=12, heads=6),
    "vit-b16": ViTSpec(width=768, depth=12, heads=12),
}


def _linear(cin: int, cout: int, dtype: Any, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(cin, cout, kernel_init=TRUNC_NORMAL, dtype=dtype, rngs=rngs)


def _layer_norm(width: int, dtype: Any, rngs: nnx.Rngs) -> nnx.LayerNorm:
    return nnx.LayerNorm(width, epsilon=LN_EPSILON, dtype=dtype, rngs=rngs)


class Attention(nnx.Module):
    """Multi-head self-attention with timm's fused qkv projection."""

    def __init__(self, width: int, heads: int, *, dtype: Any, rngs: nnx.Rngs):
        self.heads = heads
        self.qkv = _linear(width, 3 * width, dtype, rngs)
        self.proj = _linear(width, width, dtype, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        out = jax.nn.dot_product_attention(q, k, v)  # scale 1/sqrt(head width), as timm
        return self.proj(out.reshape(n, t, d))


class Mlp(nnx.Module):
    def __init__(self, width: int, hidden: int, *, dtype: Any, rngs: nnx.Rngs):
        self.fc1 = _linear(width, hidden, dtype, rngs)
        self.fc2 = _linear(hidden, width, dtype, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(jax.nn.gelu(self.fc1(x), approximate=False))  # timm: nn.GELU (erf)


class Block(nnx.Module):
    """Pre-norm transformer block."""

    def __init__(self, spec: ViTSpec, *, dtype: Any, rngs: nnx.Rngs):
        self.norm1 = _layer_norm(spec.width, dtype, rngs)
        self.attn = Attention(spec.width, spec.heads, dtype=dtype, rngs=rngs)
        self.norm2 = _layer_norm(spec.width, dtype, rngs)
        self.mlp = Mlp(spec.width, spec.width * spec.mlp_ratio, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nnx.Module):
    def __init__(self, in_channels: int, width: int, *, dtype: Any, rngs: nnx.Rngs):
        self.proj = conv(in_channels, width, PATCH, stride=PATCH, bias=True, padding="VALID",
                         dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.proj(x)


class ViTBackbone(nnx.Module):
    """Patch embedding, class token, position embeddings, blocks and the final norm.

    The position embeddings are sized for `input_shape` (224x224: 14x14 patches);
    `zoo.models.convert` resamples pretrained ones to another grid.
    """

    def __init__(self, input_shape: Sequence[int], spec: ViTSpec, *, dtype: Any = jnp.float32,
                 rngs: nnx.Rngs):
        h, w, c = input_shape
        self.grid = (h // PATCH, w // PATCH)
        self.patch_embed = PatchEmbed(c, spec.width, dtype=dtype, rngs=rngs)
        self.cls_token = nnx.Param(1e-6 * jax.random.normal(rngs.params(), (1, 1, spec.width)))
        tokens = 1 + self.grid[0] * self.grid[1]
        self.pos_embed = nnx.Param(TRUNC_NORMAL(rngs.params(), (1, tokens, spec.width)))
        self.blocks = nnx.List([Block(spec, dtype=dtype, rngs=rngs) for _ in range(spec.depth)])
        self.norm = _layer_norm(spec.width, dtype, rngs)
        self.channels = (spec.width,) * 4
        self.strides = (4, 8, 16, 32)

    def tokens(self, x: jax.Array) -> jax.Array:
        """The final-norm tokens (N, 1 + patches, width); token 0 is the class token."""
        patches = self.patch_embed(x)
        n, gh, gw, d = patches.shape
        if (gh, gw) != self.grid:
            raise ValueError(f"ViT built for a {self.grid} patch grid got {(gh, gw)}: "
                             f"feed {self.grid[0] * PATCH}x{self.grid[1] * PATCH} images")
        cls = jnp.broadcast_to(self.cls_token[...], (n, 1, d)).astype(patches.dtype)
        x = jnp.concatenate([cls, patches.reshape(n, gh * gw, d)], axis=1)
        x = x + self.pos_embed[...].astype(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def __call__(self, x: jax.Array) -> list[jax.Array]:
        """Strides 4, 8, 16, 32 from the one stride-16 map of patch tokens."""
        tokens = self.tokens(x)[:, 1:]
        n, _, d = tokens.shape
        x16 = tokens.reshape(n, *self.grid, d)
        return [_upsample(x16, 4), _upsample(x16, 2), x16, max_pool_2x2(x16)]


def _upsample(x: jax.Array, factor: int) -> jax.Array:
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


class ViT(nnx.Module):
    """A ViT classifier: the class token after the final norm into `head`."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, *, arch: str,
                 dtype: Any = jnp.float32, rngs: nnx.Rngs):
        spec = VITS[arch]
        self.backbone = ViTBackbone(input_shape, spec, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(spec.width, num_classes, kernel_init=nnx.initializers.zeros,
                               dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.backbone.tokens(x)[:, 0]).astype(jnp.float32)
