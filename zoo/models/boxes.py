"""Box geometry in JAX: pairwise IoU and fixed-size non-maximum suppression.

Boxes are (..., 4) arrays of (x0, y0, x1, y1) in pixels, x1 and y1 exclusive.
"""

import jax
import jax.numpy as jnp


def area(boxes: jax.Array) -> jax.Array:
    return jnp.clip(boxes[..., 2] - boxes[..., 0], 0) * jnp.clip(boxes[..., 3] - boxes[..., 1], 0)


def iou_matrix(a: jax.Array, b: jax.Array) -> jax.Array:
    """(..., N, M) intersection over union of every box of `a` (..., N, 4) with `b` (..., M, 4)."""
    a, b = a[..., :, None, :], b[..., None, :, :]
    w = jnp.clip(jnp.minimum(a[..., 2], b[..., 2]) - jnp.maximum(a[..., 0], b[..., 0]), 0)
    h = jnp.clip(jnp.minimum(a[..., 3], b[..., 3]) - jnp.maximum(a[..., 1], b[..., 1]), 0)
    inter = w * h
    union = area(a) + area(b) - inter
    return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1.0), 0.0)


def nms(boxes: jax.Array, scores: jax.Array, classes: jax.Array, *, iou_threshold: float,
        class_agnostic: bool = False) -> jax.Array:
    """Scores with suppressed boxes set to 0, for one image's K candidates.

    Greedy NMS in a fixed number of steps (K, one per candidate in score order), so it
    compiles once for any number of boxes: a box is dropped when a higher-scoring kept
    box (of the same class, unless `class_agnostic`) overlaps it by more than
    `iou_threshold`. Boxes of score 0 are never kept and suppress nothing.
    """
    order = jnp.argsort(-scores)
    boxes, s, c = boxes[order], scores[order], classes[order]
    overlap = iou_matrix(boxes, boxes) > iou_threshold
    if not class_agnostic:
        overlap &= c[:, None] == c[None, :]
    k = scores.shape[0]
    later = jnp.arange(k)[None, :] > jnp.arange(k)[:, None]
    suppresses = overlap & later  # row i may suppress column j > i

    def step(i, keep):
        return keep & ~(suppresses[i] & keep[i])

    keep = jax.lax.fori_loop(0, k, step, s > 0)
    kept = jnp.where(keep, s, 0.0)
    return jnp.zeros_like(scores).at[order].set(kept)
