"""CenterNet targets, loss and decoding for boxes, all pure JAX (traced inside the steps).

An object is a peak on its class's heatmap at the cell holding its box centre, plus the
centre's offset within that cell and the box size, both in cells (Zhou et al., 2019,
"Objects as Points"; the heatmap machinery is `zoo.models.heatmaps`). Ground truth
arrives padded to a fixed number of boxes per image with a validity mask, so every
batch has one shape and one compiled program.
"""

import functools

import jax
import jax.numpy as jnp

from zoo.models.boxes import nms
from zoo.models.heatmaps import box_centres, focal_loss, gather_cells, gaussian_heatmap, peaks


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
    cell, centre, size, sigma = box_centres(boxes, grid, stride)
    valid = valid.astype(bool)
    heatmap = gaussian_heatmap(cell, sigma, classes, valid, grid, num_classes)
    return {"heatmap": heatmap, "index": cell[..., 1] * grid[1] + cell[..., 0],
            "offset": centre - cell, "size": size, "valid": valid}


def loss(outputs: dict[str, jax.Array], targets: dict[str, jax.Array], *, size_weight: float,
         image_weights: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Penalty-reduced focal loss on the heatmap plus L1 on offset and size at centres.

    `image_weights` (B,) of 0 leave images (eval padding) out of the loss entirely.
    """
    heatmap_loss = focal_loss(outputs["heatmap"], targets["heatmap"], image_weights)
    if image_weights is None:
        image_weights = jnp.ones(targets["valid"].shape[0])
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
    scores, cell, classes, xy = peaks(outputs["heatmap"], k)
    centre = (xy + gather_cells(outputs["offset"], cell)) * stride
    half = gather_cells(outputs["size"], cell) * (stride / 2.0)
    boxes = jnp.concatenate([centre - half, centre + half], -1)
    if nms_iou > 0:
        suppress = functools.partial(nms, iou_threshold=nms_iou, class_agnostic=class_agnostic)
        scores = jax.vmap(suppress)(boxes, scores, classes)
    return {"boxes": boxes, "scores": scores, "classes": classes, "cells": cell}


class DecodedSteps:
    """`loss` and `eval_step` of a CenterNet-style task, from its `_loss(model, batch,
    image_weights)` -> (total, parts, outputs) and `_decode(model, outputs)`: the mean
    loss for training; for evaluation the loss weighted by the rows kept, beside what the
    task decodes (detection, pose and instances share it; mix it in before `zoo.Task`)."""

    def loss(self, model, batch, rng):
        del rng
        return self._loss(model, batch, batch.get("mask"))[:2]  # a mask leaves rows out

    def eval_step(self, model, batch):
        total, _, outputs = self._loss(model, batch, batch["mask"])
        count = batch["mask"].sum()
        return {"loss": total * count, "count": count, **self._decode(model, outputs)}
