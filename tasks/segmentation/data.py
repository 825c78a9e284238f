"""Data sets for segmentation: generated digit scenes, or a folder of images and masks."""

from pathlib import Path

import numpy as np
from PIL import Image

from zoo.data import scenes
from zoo.data.draw import IGNORE
from zoo.data.images import IMAGE_SUFFIXES, image_info, letterbox, load_image, opened
from zoo.data.loader import holdout_sizes, split_indices
from zoo.errors import ZooError, unknown
from zoo.task import Dataset

DATASETS = {
    "scenes": "digits from the embedded MNIST sample on a canvas, every ink pixel labelled "
              "with its digit (11 classes; offline; the default)",
    "masks:IMAGES/:MASKS/": "your images and same-named PNG masks of class indices "
                            f"(palette or grey; {IGNORE} = ignore)",
}
SPLIT_SEED = 20240601
INDEX_MODES = ("P", "L", "I", "I;16")  # PNG modes whose pixel values are class indices


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
    raise unknown("data set", spec, DATASETS)


def load_masks(images_dir: Path, masks_dir: Path, size: int, num_classes: int,
               spec: str) -> Dataset:
    """Image/mask pairs letterboxed to size x size, split 70/10/20.

    Images are resized bilinearly, masks nearest-neighbour (labels are never blended)
    with the padding labelled ignore.

    Raises:
      ZooError: for a missing folder or mask, a mask that is not an index PNG, a mask
        whose size differs from its image's, or a label >= `num_classes` (other than
        the ignore index).
    """
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise ZooError(f"--data {spec}: {folder} is not a directory")
    files = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 3:
        raise ZooError(f"--data {spec}: found {len(files)} image(s) in {images_dir}; "
                       f"need at least 3 (train, val and test)")
    images, labels = [], []
    for file in files:
        mask = read_mask(masks_dir / f"{file.stem}.png", file)
        labels.append(letterbox(mask[..., None], size, fill=IGNORE,
                                resample=Image.Resampling.NEAREST)[0][..., 0])
        images.append(letterbox(load_image(file, None, 3), size)[0])
    labels = np.stack(labels)
    found = np.unique(labels[labels != IGNORE])
    if num_classes and found.size and found[-1] >= num_classes:
        bad = [files[i].stem for i in np.flatnonzero(
            ((labels >= num_classes) & (labels != IGNORE)).any((1, 2)))[:3]]
        raise ZooError(f"--data {spec}: label {found[-1]} in mask(s) {', '.join(bad)} is out of "
                       f"range for num_classes={num_classes} (labels 0..{num_classes - 1}, "
                       f"{IGNORE} = ignore); raise --set num_classes or fix the masks")
    if not found.size or found[-1] == 0:
        raise ZooError(f"--data {spec}: the masks hold no class other than 0 (background) and "
                       f"{IGNORE} (ignore); masks saved as 0/255 binary images must be saved "
                       f"as 0/1 class indices")
    classes = [str(i) for i in range(num_classes or int(found[-1]) + 1)]
    n = len(files)
    idx = split_indices(n, holdout_sizes(n), SPLIT_SEED)
    images = np.stack(images)
    data = {s: {"image": images[i], "label": labels[i]} for s, i in idx.items()}
    # Photos are never inverted at predict time, whatever their mean brightness.
    return Dataset(data, image_info(classes, images, spec, ignore_index=IGNORE,
                                    dark_background=False))


def read_mask(path: Path, image_path: Path) -> np.ndarray:
    """The (H, W) class indices of a palette or grey PNG, checked against its image's size."""
    if not path.is_file():
        raise ZooError(f"{image_path}: no mask {path} (masks are PNGs named like their image)")
    with opened(image_path) as img:
        image_size = img.size
    with opened(path) as img:
        mode, mask = img.mode, np.asarray(img)
    if mode not in INDEX_MODES:
        raise ZooError(f"{path}: mode {mode} is not a class-index mask; save class indices as "
                       f"a palette (P) or greyscale (L) PNG, not colours")
    if mask.shape[::-1] != image_size:
        raise ZooError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
                       f"{image_path} is {image_size[0]}x{image_size[1]}; they must match")
    if mask.max(initial=0) > IGNORE:
        raise ZooError(f"{path}: label {mask.max()} is above {IGNORE}; class indices must be "
                       f"0..254 ({IGNORE} = ignore)")
    return mask.astype(np.uint8)
