"""Heatmaps of points, as CenterNet-style models learn and read them (pure JAX).

A point (an object's centre, a person's joint) is a peak on its channel of a low-
resolution map: a Gaussian target drawn around the cell that holds it, learned with a
penalty-reduced focal loss, and read back as the cells that are the maximum of their
3x3 neighbourhood (Zhou et al., 2019, "Objects as Points"). Sub-cell offsets and other
per-point values are read at those cells. Shapes are fixed: points come padded with a
validity mask, peaks are the top k, so each function compiles once.
"""

import jax
import jax.numpy as jnp

ALPHA = 0.54  # a box's Gaussian spread relative to its size (TTFNet's elliptical variant)
MIN_SIGMA = 0.5  # cells: a point near a cell edge makes the neighbour a near-miss, not a miss


def cells(points: jax.Array, grid: tuple[int, int]) -> jax.Array:
    """(..., 2) int32 (x, y) cells of (..., 2) points given in cells, clipped to the grid."""
    h, w = grid
    last = jnp.array([w - 1, h - 1]).reshape((1,) * (points.ndim - 1) + (2,))
    return jnp.clip(jnp.floor(points), 0, last).astype(jnp.int32)


def box_centres(boxes: jax.Array, grid: tuple[int, int], stride: int
                ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Centre cell, centre, size (all (x, y) in cells) and Gaussian sigma of (..., 4)
    pixel boxes (x0, y0, x1, y1)."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / (2.0 * stride)
    size = (boxes[..., 2:] - boxes[..., :2]) / stride
    return cells(centre, grid), centre, size, jnp.maximum(ALPHA * size / 6.0, MIN_SIGMA)


def gaussian_heatmap(cell: jax.Array, sigma: jax.Array, channel: jax.Array, valid: jax.Array,
                     grid: tuple[int, int], num_channels: int) -> jax.Array:
    """(B, h, w, C) targets: per channel, the max of the Gaussians of its valid points.

    Args:
      cell: (B, M, 2) int (x, y) cells, each exactly 1 on its map; sigma: (B, M, 2)
        spreads in cells; channel: (B, M) int; valid: (B, M) bool.
    """
    return jax.vmap(_draw, in_axes=(0, 0, 0, 0, None, None))(cell, sigma, channel, valid,
                                                            grid, num_channels)


def _draw(cell, sigma, channel, valid, grid, num_channels):
    ys, xs = jnp.arange(grid[0])[None, :, None], jnp.arange(grid[1])[None, None, :]
    d2 = ((xs - cell[:, 0, None, None]) ** 2 / (2 * sigma[:, 0, None, None] ** 2) +
          (ys - cell[:, 1, None, None]) ** 2 / (2 * sigma[:, 1, None, None] ** 2))
    g = jnp.exp(-d2) * valid[:, None, None]  # (M, h, w)
    return jnp.zeros((*grid, num_channels)).at[:, :, channel].max(jnp.moveaxis(g, 0, -1))


def gather_cells(maps: jax.Array, index: jax.Array) -> jax.Array:
    """(B, M, D) values of (B, h, w, D) maps at flat cell indices (B, M)."""
    flat = maps.reshape(maps.shape[0], -1, maps.shape[-1])
    return jnp.take_along_axis(flat, index[..., None], axis=1)


def focal_loss(logits: jax.Array, target: jax.Array,
               image_weights: jax.Array | None = None) -> jax.Array:
    """CenterNet's penalty-reduced focal loss of (B, h, w, C) logits, per peak.

    Cells where `target` is exactly 1 are positives; near them the (1 - target)^4 factor
    forgives false positives. `image_weights` (B,) of 0 leave images (eval padding) out.
    """
    logits = logits.astype(jnp.float32)
    if image_weights is None:
        image_weights = jnp.ones(logits.shape[0])
    pos = (target == 1.0).astype(jnp.float32) * image_weights[:, None, None, None]
    p = jax.nn.sigmoid(logits)
    focal = -(pos * (1 - p) ** 2 * jax.nn.log_sigmoid(logits) +
              (1 - pos) * (1 - target) ** 4 * p ** 2 * jax.nn.log_sigmoid(-logits))
    focal = focal * image_weights[:, None, None, None]
    return focal.sum() / jnp.maximum(pos.sum(), 1.0)


def peaks(logits: jax.Array, k: int) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """The `k` highest 3x3-local maxima of (B, h, w, C) logits over all channels.

    Returns:
      (B, k) probabilities, flat cell indices and channels, and (B, k, 2) (x, y) cells.
    """
    b, h, w, c = logits.shape
    scores, flat = jax.lax.top_k(_local_maxima(logits).reshape(b, -1), k)
    cell = flat // c
    return scores, cell, flat % c, _xy(cell, w)


def channel_peaks(logits: jax.Array, k: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The `k` highest 3x3-local maxima of each channel of (B, h, w, C) logits.

    Returns:
      (B, C, k) probabilities and flat cell indices, and (B, C, k, 2) (x, y) cells.
    """
    b, h, w, c = logits.shape
    local = jnp.moveaxis(_local_maxima(logits), -1, 1).reshape(b, c, h * w)
    scores, cell = jax.lax.top_k(local, k)
    return scores, cell, _xy(cell, w)


def _local_maxima(logits: jax.Array) -> jax.Array:
    """Probabilities where a cell is the maximum of its 3x3 neighbourhood, else 0."""
    heat = jax.nn.sigmoid(logits.astype(jnp.float32))
    pooled = jax.lax.reduce_window(heat, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 1, 1, 1), "SAME")
    return jnp.where(heat == pooled, heat, 0.0)


def _xy(cell: jax.Array, width: int) -> jax.Array:
    return jnp.stack([cell % width, cell // width], -1).astype(jnp.float32)
