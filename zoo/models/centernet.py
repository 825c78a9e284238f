"""CenterNet targets, loss and decoding, all pure JAX (traced inside the compiled steps).

An object is a peak on its class's heatmap at the cell holding its box centre, plus the
centre's offset within that cell and the box size, both in cells (Zhou et al., 2019,
"Objects as Points"). Ground truth arrives padded to a fixed number of boxes per image
with a validity mask, so every batch has one shape and one compiled program.
"""

import functools

import jax
import jax.numpy as jnp

from zoo.models.boxes import nms

ALPHA = 0.54  # Gaussian spread relative to box size (TTFNet's elliptical variant)
MIN_SIGMA = 0.5  # cells: a centre near a cell edge makes the neighbour a near-miss, not a miss


def encode(boxes: jax.Array, classes: jax.Array, valid: jax.Array, *, grid: tuple[int, int],
           stride: int, num_classes: int) -> dict[str, jax.Array]:
    """Training targets for a batch of padded ground truth.

    Args:
      boxes: (B, M, 4) pixel boxes (x0, y0, x1, y1); classes: (B, M) int; valid: (B, M).
      grid: (h, w) cells of the output maps; stride: pixels per cell.

    Returns:
      "heatmap" (B, h, w, C) in [0, 1], exactly 1 at each centre cell; "index" (B, M)
      flat centre cell; "offset" and "size" (B, M, 2) as (x, y) in cells; "valid".
    """
    h, w = grid
    centre = (boxes[..., :2] + boxes[..., 2:]) / (2.0 * stride)
    cell = jnp.clip(jnp.floor(centre), 0, jnp.array([[[w - 1, h - 1]]])).astype(jnp.int32)
    size = (boxes[..., 2:] - boxes[..., :2]) / stride
    sigma = jnp.maximum(ALPHA * size / 6.0, MIN_SIGMA)
    valid = valid.astype(bool)
    heatmap = jax.vmap(_draw_gaussians, in_axes=(0, 0, 0, 0, None, None))(
        cell, sigma, classes, valid, grid, num_classes)
    return {"heatmap": heatmap, "index": cell[..., 1] * w + cell[..., 0],
            "offset": centre - cell, "size": size, "valid": valid}


def _draw_gaussians(cell, sigma, classes, valid, grid, num_classes):
    """One image's (h, w, C) heatmap: the max of each box's Gaussian on its class channel."""
    ys, xs = jnp.arange(grid[0])[None, :, None], jnp.arange(grid[1])[None, None, :]
    d2 = ((xs - cell[:, 0, None, None]) ** 2 / (2 * sigma[:, 0, None, None] ** 2) +
          (ys - cell[:, 1, None, None]) ** 2 / (2 * sigma[:, 1, None, None] ** 2))
    g = jnp.exp(-d2) * valid[:, None, None]  # (M, h, w)
    return jnp.zeros((*grid, num_classes)).at[:, :, classes].max(jnp.moveaxis(g, 0, -1))


def gather_cells(maps: jax.Array, index: jax.Array) -> jax.Array:
    """(B, M, D) values of (B, h, w, D) maps at flat cell indices (B, M)."""
    flat = maps.reshape(maps.shape[0], -1, maps.shape[-1])
    return jnp.take_along_axis(flat, index[..., None], axis=1)


def loss(outputs: dict[str, jax.Array], targets: dict[str, jax.Array], *, size_weight: float,
         image_weights: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Penalty-reduced focal loss on the heatmap plus L1 on offset and size at centres.

    `image_weights` (B,) of 0 leave images (eval padding) out of the loss entirely.
    """
    logits = outputs["heatmap"].astype(jnp.float32)
    heat = targets["heatmap"]
    if image_weights is None:
        image_weights = jnp.ones(logits.shape[0])
    pos = (heat == 1.0).astype(jnp.float32) * image_weights[:, None, None, None]
    p = jax.nn.sigmoid(logits)
    focal = -(pos * (1 - p) ** 2 * jax.nn.log_sigmoid(logits) +
              (1 - pos) * (1 - heat) ** 4 * p ** 2 * jax.nn.log_sigmoid(-logits))
    focal = focal * image_weights[:, None, None, None]
    heatmap_loss = focal.sum() / jnp.maximum(pos.sum(), 1.0)
    valid = (targets["valid"] * image_weights[:, None])[..., None].astype(jnp.float32)
    n = jnp.maximum(valid.sum(), 1.0)

    def l1(name):
        return jnp.sum(jnp.abs(gather_cells(outputs[name], targets["index"]) - targets[name])
                       * valid) / n

    offset_loss, size_loss = l1("offset"), l1("size")
    total = heatmap_loss + offset_loss + size_weight * size_loss
    return total, {"heatmap_loss": heatmap_loss, "offset_loss": offset_loss, "size_loss": size_loss}


def decode(outputs: dict[str, jax.Array], *, stride: int, k: int, nms_iou: float,
           class_agnostic: bool) -> dict[str, jax.Array]:
    """The top `k` detections per image: (B, k, 4) pixel boxes, (B, k) scores, classes and
    "cells" (the flat heatmap cell of each, where other per-cell heads are read).

    Peaks are cells that are the maximum of their 3x3 neighbourhood (CenterNet's
    substitute for NMS); `nms_iou` > 0 adds greedy NMS on top. Suppressed and missing
    detections have score 0.
    """
    heat = jax.nn.sigmoid(outputs["heatmap"].astype(jnp.float32))
    b, h, w, c = heat.shape
    pooled = jax.lax.reduce_window(heat, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 1, 1, 1), "SAME")
    peaks = jnp.where(heat == pooled, heat, 0.0).reshape(b, -1)
    scores, flat = jax.lax.top_k(peaks, k)
    classes, cell = flat % c, flat // c
    xy = jnp.stack([cell % w, cell // w], -1).astype(jnp.float32)
    centre = (xy + gather_cells(outputs["offset"], cell)) * stride
    half = gather_cells(outputs["size"], cell) * (stride / 2.0)
    boxes = jnp.concatenate([centre - half, centre + half], -1)
    if nms_iou > 0:
        suppress = functools.partial(nms, iou_threshold=nms_iou, class_agnostic=class_agnostic)
        scores = jax.vmap(suppress)(boxes, scores, classes)
    return {"boxes": boxes, "scores": scores, "classes": classes, "cells": cell}
