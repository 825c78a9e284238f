"""Images with per-pixel class masks, streamed: `masks:IMAGES/:MASKS/` and Pascal VOC.

`MaskedImages` holds file names only; an image and its mask (a palette or grey PNG of
class indices, 255 = ignore) are decoded when a batch needs them and letterboxed alike:
the image bilinearly, the mask nearest-neighbour with the padding labelled ignore.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.data.draw import IGNORE
from zoo.data.images import letterbox, load_image, opened
from zoo.data.sources import Example, Source, files_fingerprint
from zoo.errors import ZooError

INDEX_MODES = ("P", "L", "I", "I;16")  # PNG modes whose pixel values are class indices


def read_mask(path: Path, image_path: Path, image_size: Sequence[int] | None = None) -> np.ndarray:
    """The (H, W) class indices of a palette or grey PNG, checked against its image's
    (width, height) `image_size` (read from the image's header when not given)."""
    if not path.is_file():
        raise ZooError(f"{image_path}: no mask {path} (masks are PNGs named like their image)")
    with opened(path) as img:
        mode, mask = img.mode, np.asarray(img)
    if image_size is None:
        with opened(image_path) as img:
            image_size = img.size
    if mode not in INDEX_MODES:
        raise ZooError(f"{path}: mode {mode} is not a class-index mask; save class indices as "
                       f"a palette (P) or greyscale (L) PNG, not colours")
    if mask.shape[::-1] != tuple(image_size):
        raise ZooError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
                       f"{image_path} is {image_size[0]}x{image_size[1]}; they must match")
    if mask.max(initial=0) > IGNORE:
        raise ZooError(f"{path}: label {mask.max()} is above {IGNORE}; class indices must be "
                       f"0..254 ({IGNORE} = ignore)")
    return mask.astype(np.uint8)


class MaskedImages(Source):
    """Image/mask pairs: "image" uint8 (S, S, 3) and "label" uint8 (S, S), letterboxed.

    Args:
      images, masks: file paths of each pair.
      num_classes: labels must be below it (else the example is unreadable); 0: unchecked.
    """

    def __init__(self, images: Sequence[str], masks: Sequence[str], size: int, num_classes: int):
        self.images = np.asarray([str(p) for p in images], np.str_)
        self.masks = np.asarray([str(p) for p in masks], np.str_)
        self.size, self.num_classes = size, num_classes

    def __len__(self) -> int:
        return len(self.images)

    def origin(self, i: int) -> str:
        return str(self.images[i])

    def read(self, i: int) -> Example:
        image = load_image(self.images[i], None, 3)
        mask = read_mask(Path(self.masks[i]), Path(self.images[i]), image.shape[1::-1])
        high = mask[mask != IGNORE].max(initial=0)
        if self.num_classes and high >= self.num_classes:
            raise ZooError(f"{self.masks[i]}: label {high} is out of range for num_classes="
                           f"{self.num_classes} (labels 0..{self.num_classes - 1}, {IGNORE} = "
                           f"ignore); raise --set num_classes or fix the mask")
        return {"image": image, "label": mask}

    def finish(self, example: Example) -> Example:
        label = letterbox(example["label"][..., None], self.size, fill=IGNORE,
                          resample=Image.Resampling.NEAREST)[0][..., 0]
        return {"image": letterbox(example["image"], self.size)[0], "label": label}

    def fingerprint(self) -> str:
        return files_fingerprint("/", [*self.images, *self.masks], self.size, self.num_classes)


def largest_label(masks: Sequence[str], images: Sequence[str]) -> int:
    """The largest class index in any mask (a pass over every mask, none of the images)."""
    high = -1
    for mask, image in zip(masks, images):
        values = read_mask(Path(mask), Path(image))
        labelled = values[values != IGNORE]
        if labelled.size:
            high = max(high, int(labelled.max()))
    return high
