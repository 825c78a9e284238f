"""Data sets for segmentation: generated digit scenes, or a folder of images and masks."""

from pathlib import Path

import numpy as np

from zoo.data import scenes, voc
from zoo.data.draw import IGNORE
from zoo.data.images import IMAGE_SUFFIXES, image_info
from zoo.data.loader import holdout_sizes, split_indices
from zoo.data.masks import MaskedImages, largest_label
from zoo.errors import ZooError, unknown
from zoo.task import Dataset

DATASETS = {
    "scenes": "digits from the embedded MNIST sample on a canvas, every ink pixel labelled "
              "with its digit (11 classes; offline; the default)",
    "masks:IMAGES/:MASKS/": "your images and same-named PNG masks of class indices "
                            f"(palette or grey; {IGNORE} = ignore; streamed)",
    "voc:ROOT": "Pascal VOC segmentation (ROOT/JPEGImages/, SegmentationClass/*.png, "
                "ImageSets/Segmentation/train.txt and val.txt; 21 classes; streamed)",
}
SPLIT_SEED = 20240601


def load(spec: str, scene_cfg: scenes.SceneConfig, image_size: int, num_classes: int) -> Dataset:
    """The splits of `spec`: "image" uint8 (N, H, W, C) and "label" uint8 (N, H, W)."""
    if spec == "scenes":
        splits = scenes.load_scenes(scene_cfg)
        data = {s: {"image": a["image"], "label": a["segmentation"]} for s, a in splits.items()}
        classes = ["background", *scenes.CLASSES]
        return Dataset(data, image_info(classes, data["train"]["image"], spec, ignore_index=IGNORE))
    if spec.startswith("masks:"):
        images_dir, sep, masks_dir = spec.removeprefix("masks:").partition(":")
        if not sep or not images_dir or not masks_dir:
            raise ZooError(f"--data {spec}: expected masks:IMAGES_DIR:MASKS_DIR")
        return load_masks(Path(images_dir), Path(masks_dir), image_size, num_classes, spec)
    if spec.startswith("voc:"):
        splits, classes = voc.segmentation_splits(Path(spec.removeprefix("voc:")), image_size)
        return _dataset(splits, classes, image_size, spec)
    raise unknown("data set", spec, DATASETS)


def load_masks(images_dir: Path, masks_dir: Path, size: int, num_classes: int,
               spec: str) -> Dataset:
    """Image/mask pairs letterboxed to size x size when read (`zoo.data.masks`), split
    70/10/20. With num_classes=0 every mask (no image) is read once to find the largest
    label; with num_classes given, none is read up front.

    Raises:
      ZooError: for a missing folder, or (num_classes=0) a missing mask, a mask that is
        not an index PNG, a mask whose size differs from its image's, or masks holding
        no class but 0.
    """
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise ZooError(f"--data {spec}: {folder} is not a directory")
    files = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 3:
        raise ZooError(f"--data {spec}: found {len(files)} image(s) in {images_dir}; "
                       f"need at least 3 (train, val and test)")
    masks = [masks_dir / f"{file.stem}.png" for file in files]
    if not num_classes:
        high = largest_label(masks, files)
        if high <= 0:
            raise ZooError(f"--data {spec}: the masks hold no class other than 0 (background) "
                           f"and {IGNORE} (ignore); masks saved as 0/255 binary images must be "
                           f"saved as 0/1 class indices")
        num_classes = high + 1
    pairs = MaskedImages(files, masks, size, num_classes)
    n = len(files)
    idx = split_indices(n, holdout_sizes(n), SPLIT_SEED)
    return _dataset({s: pairs.subset(i) for s, i in idx.items()},
                    [str(i) for i in range(num_classes)], size, spec)


def _dataset(splits: dict, classes: list[str], size: int, spec: str) -> Dataset:
    # Photos are never inverted at predict time, whatever their mean brightness.
    return Dataset(splits, image_info(classes, np.zeros((0, size, size, 3)), spec,
                                      ignore_index=IGNORE, dark_background=False))

