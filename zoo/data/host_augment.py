"""Training-time augmentation on the host, per example, in the input workers.

What an on-device `Task.augment` cannot do well: work on each image at its own size
before it is brought to the batch's shape. `crop_flip` is the Inception / ResNet
ImageNet recipe (torchvision's `RandomResizedCrop` and `RandomHorizontalFlip`): a crop
of random area and aspect ratio from the full-size image, resized to the training size
in the same PIL call, then flipped left-right half of the time.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from zoo.data.images import converted
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
    return _resized(pil, box, rng, size, flip).reshape(size[0], size[1], c)


def crop_flip(example: Example, rng: np.random.Generator, size: Sequence[int]) -> Example:
    """`example` with its "image" randomly cropped, resized to `size` and flipped
    (a `Task.host_augment`: bind `size` with functools.partial, or use `CropFlip`)."""
    return {**example, "image": random_resized_crop(example["image"], rng, size)}


@dataclasses.dataclass(frozen=True)
class CropFlip:
    """`crop_flip` at (h, w) `size`, as a `Task.host_augment`.

    A source of image files (`ImageFiles`) hands it the file instead (`from_file`): the
    crop is drawn from the size in the file's header, and a JPEG is decoded at the
    smallest scale (1/2, 1/4 or 1/8, by libjpeg) that still gives the crop `size` pixels,
    which at 32x32 from 128x128 photos halves the per-image work. The pixels differ
    slightly from a full decode's (the random draws do not): either way, a run's batches
    are a function of its seed.
    """

    size: tuple[int, int]

    def __call__(self, example: Example, rng: np.random.Generator) -> Example:
        return crop_flip(example, rng, self.size)

    def from_file(self, image: Image.Image, rng: np.random.Generator, channels: int,
                  name: str) -> np.ndarray:
        """The (h, w, channels) uint8 crop of an opened image file (pixels not yet read)."""
        width, height = image.size
        left, top, right, bottom = crop_box(height, width, rng)
        h, w = self.size
        drafted = image.draft("L" if channels == 1 else None,
                              (math.ceil(width * w / (right - left)),
                               math.ceil(height * h / (bottom - top))))
        if drafted is not None:  # a JPEG, now (up to) 8x smaller: the box follows
            sx, sy = drafted[1][2] / width, drafted[1][3] / height
            left, top, right, bottom = left * sx, top * sy, right * sx, bottom * sy
        pil = converted(image, channels, name)
        return _resized(pil, (left, top, right, bottom), rng, self.size,
                        flip=True).reshape(h, w, channels)


def _resized(image: Image.Image, box: Sequence[float], rng: np.random.Generator,
             size: Sequence[int], flip: bool) -> np.ndarray:
    """`box` of `image` resized to (h, w) `size` bilinearly, then mirrored with
    probability 1/2 when `flip` (one draw of `rng`)."""
    out = image.resize((size[1], size[0]), Image.Resampling.BILINEAR, box=tuple(box))
    if flip and rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(out)
