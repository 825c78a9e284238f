"""Vectorised drawing of round-capped strokes and disks on pixel grids.

Everything is numpy over a leading batch of shapes: one array operation draws a stroke
into every image of a chunk, so generators never loop over pixels. Coordinates are
continuous (x, y) pixels; pixel (i, j) covers [j, j+1) x [i, i+1), so its centre is
(j + 0.5, i + 0.5). Work happens in the dtype of the coordinates given.
"""

from collections.abc import Sequence

import numpy as np


def segment_distance(a: np.ndarray, b: np.ndarray, height: int, width: int) -> np.ndarray:
    """(..., height, width) distance from every pixel centre to the segment a-b.

    Args:
      a, b: (..., 2) end points as (x, y).
    """
    xs = np.arange(width, dtype=a.dtype) + 0.5
    ys = np.arange(height, dtype=a.dtype) + 0.5
    return _distance(a, b, xs, ys)


def capsule(a: np.ndarray, b: np.ndarray, radius: np.ndarray, height: int,
            width: int) -> np.ndarray:
    """(..., height, width) coverage in [0, 1] of round-capped strokes of `radius` from a
    to b, with a one-pixel antialiased edge (a negative radius draws nothing)."""
    return _cover(segment_distance(a, b, height, width), radius)


def union_of_capsules(shapes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                      height: int, width: int) -> np.ndarray:
    """(m, height, width) coverage of the union of small strokes, one set per row.

    Each stroke is measured only in a window around it (the same size for all m rows,
    placed per row), which for limbs is a tenth of the image or less.

    Args:
      shapes: (a, b, radius) with a, b (m, 2) and radius (m,); a == b draws a disk.
    """
    m, dtype = len(shapes[0][0]), shapes[0][0].dtype
    spans = [np.abs(b - a).max(-1) + 2 * np.maximum(r, 0) + 3 for a, b, r in shapes]
    pad = int(np.ceil(max(s.max() for s in spans)))
    out = np.zeros((m, height + 2 * pad, width + 2 * pad), dtype)
    rows = np.arange(m)[:, None, None]
    for (a, b, r), span in zip(shapes, spans):
        size = int(np.ceil(span.max()))
        corner = np.floor(np.minimum(a, b) - np.maximum(r, 0)[:, None] - 1)
        corner = np.clip(corner, -pad, np.array([width, height]) + pad - size).astype(np.int64)
        steps = np.arange(size)
        xs, ys = corner[:, :1] + steps, corner[:, 1:] + steps  # (m, size) pixel indices
        cover = _cover(_distance(a, b, (xs + 0.5).astype(dtype), (ys + 0.5).astype(dtype)), r)
        at = rows, ys[:, :, None] + pad, xs[:, None, :] + pad
        out[at] = np.maximum(out[at], cover)
    return out[:, pad:pad + height, pad:pad + width]


def _distance(a: np.ndarray, b: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(..., H, W) distance from the points (xs[j], ys[i]) to segments a-b; xs (..., W)
    or (W,), ys likewise."""
    px = xs[..., None, :] - a[..., 0, None, None]
    py = ys[..., :, None] - a[..., 1, None, None]
    dx, dy = (b[..., 0] - a[..., 0])[..., None, None], (b[..., 1] - a[..., 1])[..., None, None]
    t = py * dy + px * dx
    np.divide(t, np.maximum(dx ** 2 + dy ** 2, 1e-6), out=t)
    np.clip(t, 0, 1, out=t)
    ex = px - t * dx
    return np.hypot(py - t * dy, ex, out=ex)


def _cover(distance: np.ndarray, radius: np.ndarray) -> np.ndarray:
    distance *= -1
    distance += (radius + 0.5)[..., None, None].astype(distance.dtype)
    return np.clip(distance, 0.0, 1.0, out=distance)
