"""Training-time augmentation on the host, per example, in the input workers.

What an on-device `Task.augment` cannot do well: work on each image at its own size
before it is brought to the batch's shape. `crop_flip` is the Inception / ResNet
ImageNet recipe (torchvision's `RandomResizedCrop` and `RandomHorizontalFlip`): a crop
of random area and aspect ratio from the full-size image, resized to the training size
in the same PIL call, then flipped left-right half of the time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from zoo.data.sources import Example

SCALE = (0.08, 1.0)  # crop area, as a fraction of the image's
RATIO = (3 / 4, 4 / 3)  # crop aspect ratio (width / height)


def crop_box(height: int, width: int, rng: np.random.Generator, scale: Sequence[float] = SCALE,
             ratio: Sequence[float] = RATIO) -> tuple[int, int, int, int]:
    """A random (left, top, right, bottom) crop, as torchvision's RandomResizedCrop draws
    it: ten tries at an area and log-uniform aspect ratio that fit, else the centre crop
    of the nearest allowed ratio."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            return left, top, left + w, top + h
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return left, top, left + w, top + h


def random_resized_crop(image: np.ndarray, rng: np.random.Generator, size: Sequence[int],
                        flip: bool = True) -> np.ndarray:
    """A random crop of an (H, W, C) uint8 image resized to `size` (h, w) bilinearly,
    mirrored left-right with probability 1/2 when `flip`."""
    h, w, c = image.shape
    box = crop_box(h, w, rng)
    pil = Image.fromarray(image[..., 0] if c == 1 else image)
    out = pil.resize((size[1], size[0]), Image.Resampling.BILINEAR, box=box)
    if flip and rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(out).reshape(size[0], size[1], c)


def crop_flip(example: Example, rng: np.random.Generator, size: Sequence[int]) -> Example:
    """`example` with its "image" randomly cropped, resized to `size` and flipped
    (a `Task.host_augment`: bind `size` with functools.partial)."""
    return {**example, "image": random_resized_crop(example["image"], rng, size)}
