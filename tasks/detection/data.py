"""Data sets for detection: generated digit scenes, or COCO-format json plus images.

Every example holds "image" uint8 (S, S, C), "boxes" float32 (M, 4) pixel (x0, y0, x1,
y1), "classes" int32 (M,) and "box_valid" bool (M,): boxes padded to the data set's
largest count M, so every batch has one shape. The scenes are arrays in memory; COCO
and VOC images are read when a batch needs them (`zoo.data.coco.BoxedImages`).
"""

from pathlib import Path

import numpy as np

from zoo.data import coco, scenes, voc
from zoo.data.images import image_info
from zoo.errors import unknown
from zoo.task import Dataset

DATASETS = {
    "scenes": "digits from the embedded MNIST sample on a canvas, one box per digit "
              "(offline; the default)",
    "coco:ANN.json:IMAGES/": "your COCO-format annotations and image folder (any image "
                             "size: letterboxed to image_size, boxes mapped to match; streamed)",
    "voc:ROOT": "Pascal VOC (ROOT/Annotations/*.xml, JPEGImages/, ImageSets/Main/train.txt, "
                "val.txt and test.txt if present; streamed)",
}


def load(spec: str, scene_cfg: scenes.SceneConfig, image_size: int) -> Dataset:
    if spec == "scenes":
        splits = scenes.load_scenes(scene_cfg)
        fields = ("image", "boxes", "classes", "box_valid")
        data = {s: {k: a[k] for k in fields} for s, a in splits.items()}
        return Dataset(data, image_info(scenes.CLASSES, data["train"]["image"], spec))
    if spec.startswith("coco:"):
        names, splits = coco.load_splits(spec, image_size)
    elif spec.startswith("voc:"):
        splits, names = voc.detection_splits(Path(spec.removeprefix("voc:")), image_size)
    else:
        raise unknown("data set", spec, DATASETS)
    # Photos are never inverted at predict time, whatever their mean brightness.
    return Dataset(splits, image_info(names, np.zeros((0, image_size, image_size, 3)), spec,
                                      dark_background=False))
