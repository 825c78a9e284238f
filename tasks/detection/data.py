"""Data sets for detection: generated digit scenes, or COCO-format json plus images.

Every example holds "image" uint8 (S, S, C), "boxes" float32 (M, 4) pixel (x0, y0, x1,
y1), "classes" int32 (M,) and "box_valid" bool (M,): boxes padded to the data set's
largest count M, so every batch has one shape. The scenes are arrays in memory; COCO
and VOC images are read when a batch needs them (`zoo.data.coco.BoxedImages`).
"""

from pathlib import Path

import numpy as np

from zoo.data import scenes, voc
from zoo.data.coco import BoxedImages, read_coco
from zoo.data.images import image_info
from zoo.data.loader import holdout_sizes, split_indices
from zoo.errors import ZooError, unknown
from zoo.task import Dataset

DATASETS = {
    "scenes": "digits from the embedded MNIST sample on a canvas, one box per digit "
              "(offline; the default)",
    "coco:ANN.json:IMAGES/": "your COCO-format annotations and image folder (any image "
                             "size: letterboxed to image_size, boxes mapped to match; streamed)",
    "voc:ROOT": "Pascal VOC (ROOT/Annotations/*.xml, JPEGImages/, ImageSets/Main/train.txt, "
                "val.txt and test.txt if present; streamed)",
}
SPLIT_SEED = 20240601


def load(spec: str, scene_cfg: scenes.SceneConfig, image_size: int) -> Dataset:
    if spec == "scenes":
        splits = scenes.load_scenes(scene_cfg)
        fields = ("image", "boxes", "classes", "box_valid")
        data = {s: {k: a[k] for k in fields} for s, a in splits.items()}
        return Dataset(data, image_info(scenes.CLASSES, data["train"]["image"], spec))
    if spec.startswith("coco:"):
        ann, sep, images_dir = spec.removeprefix("coco:").partition(":")
        if not sep or not ann or not images_dir:
            raise ZooError(f"--data {spec}: expected coco:ANNOTATIONS.json:IMAGES_DIR")
        return load_coco(Path(ann), Path(images_dir), image_size, spec)
    if spec.startswith("voc:"):
        splits, names = voc.detection_splits(Path(spec.removeprefix("voc:")), image_size)
        return Dataset(splits, image_info(names, np.zeros((0, image_size, image_size, 3)), spec,
                                          dark_background=False))
    raise unknown("data set", spec, DATASETS)


def load_coco(ann_path: Path, images_dir: Path, size: int, spec: str) -> Dataset:
    """COCO json + images, letterboxed to size x size when read, split 70/10/20 by image.

    Only the annotations are read up front (`zoo.data.coco`); crowd annotations
    (iscrowd=1) are left out, images without boxes are kept.

    Raises:
      ZooError: for unreadable json, missing keys or images, an unknown category id,
        or a box that is empty or lies outside its image.
    """
    index = read_coco(ann_path, images_dir)
    n = len(index)
    if n < 3:
        raise ZooError(f"{ann_path}: {n} image(s); need at least 3 (train, val and test)")
    images = BoxedImages(index, size)
    idx = split_indices(n, holdout_sizes(n), SPLIT_SEED)
    # Photos are never inverted at predict time, whatever their mean brightness.
    return Dataset({s: images.subset(j) for s, j in idx.items()},
                   image_info(index.names, np.zeros((0, size, size, 3)), spec,
                              dark_background=False))
