"""On-device image augmentation, run inside the compiled train step."""

from typing import Literal

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates

FlipAffine = Literal["flip", "flip_affine", "none"]


def random_affine(images: jax.Array, rng: jax.Array, *, max_rotate_deg: float = 12.0,
                  max_scale: float = 0.12, max_shift: float = 0.1) -> jax.Array:
    """Random rotation, scale and shift per image (bilinear, zero fill). NHWC float."""
    n, h, w, _ = images.shape
    k_rot, k_scale, k_shift = jax.random.split(rng, 3)
    angle = jnp.deg2rad(max_rotate_deg) * jax.random.uniform(k_rot, (n,), minval=-1, maxval=1)
    scale = 1.0 + max_scale * jax.random.uniform(k_scale, (n,), minval=-1, maxval=1)
    shift = max_shift * jnp.array([[h, w]]) * jax.random.uniform(k_shift, (n, 2), minval=-1, maxval=1)
    return jax.vmap(_warp)(images, angle, scale, shift)


def _warp(image: jax.Array, angle: jax.Array, scale: jax.Array, shift: jax.Array) -> jax.Array:
    """Samples `image` at the inverse-transformed output grid (about the centre)."""
    h, w, c = image.shape
    centre = jnp.array([(h - 1) / 2, (w - 1) / 2])
    ys, xs = jnp.meshgrid(jnp.arange(h, dtype=image.dtype), jnp.arange(w, dtype=image.dtype),
                          indexing="ij")
    coords = jnp.stack([ys.ravel(), xs.ravel()]) - (centre + shift)[:, None]
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    inverse = jnp.array([[cos, sin], [-sin, cos]]) / scale
    source = inverse @ coords + centre[:, None]
    channels = [map_coordinates(image[..., i], list(source), order=1, mode="constant")
                for i in range(c)]
    return jnp.stack(channels, axis=-1).reshape(h, w, c)


def random_flip(images: jax.Array, rng: jax.Array) -> jax.Array:
    """Left-right flip of a random half of the batch."""
    flip = jax.random.bernoulli(rng, 0.5, (images.shape[0], 1, 1, 1))
    return jnp.where(flip, images[:, :, ::-1, :], images)


def flip_and_affine(images: jax.Array, rng: jax.Array, mode: FlipAffine) -> jax.Array:
    """Random left-right flips (`flip`), plus a mild random affine (`flip_affine`: 8
    degrees, 8% scale, 6% shift) for aligned photos such as faces. Flips suit only labels
    that are left-right symmetric."""
    k_flip, k_affine = jax.random.split(rng)
    if mode != "none":
        images = random_flip(images, k_flip)
    if mode == "flip_affine":
        images = random_affine(images, k_affine, max_rotate_deg=8.0, max_scale=0.08,
                               max_shift=0.06)
    return images
