"""A grid of generated images as one PNG."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image


def save_grid(images: np.ndarray, path: Path, columns: int = 0, gap: int = 2) -> None:
    """Tiles NHWC images in [0, 1] row by row (`columns` 0: a square) and writes a PNG."""
    images = np.clip(np.asarray(images, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * (h + gap) + gap, columns * (w + gap) + gap, c), np.uint8)
    for i, image in enumerate(images):
        top, left = gap + (i // columns) * (h + gap), gap + (i % columns) * (w + gap)
        grid[top:top + h, left:left + w] = image
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    Image.fromarray(grid[..., 0] if c == 1 else grid).save(tmp)
    os.replace(tmp, path)  # a viewer never sees half a file
