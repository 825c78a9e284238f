"""A grid of generated images as one PNG (the per-epoch samples)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.predictions import grid, save_png


def save_grid(images: np.ndarray, path: Path, columns: int = 0) -> None:
    """Tiles NHWC images in [0, 1] row by row (`columns` 0: a square) and writes a PNG."""
    pixels = np.clip(np.asarray(images, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    save_png(grid(list(pixels), columns), path)
