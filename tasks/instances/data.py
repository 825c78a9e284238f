"""Data sets for instance segmentation: touching digit scenes, or COCO json plus images.

Every example holds "image" uint8 (S, S, C), "instances" uint8 (S, S) (0 background,
j + 1 where object j is), "boxes" float32 (M, 4) pixel (x0, y0, x1, y1), "classes"
int32 (M,) and "box_valid" bool (M,), padded to the largest object count M. The scenes
are arrays in memory; COCO images and masks are decoded when a batch needs them.
"""

import numpy as np

from zoo.data import coco, instance_scenes, scenes
from zoo.data.images import image_info
from zoo.errors import unknown
from zoo.task import Dataset

DATASETS = {
    "scenes": "digits from the embedded MNIST sample touching and overlapping, often of the "
              "same class, one mask per digit (offline; the default)",
    "coco:ANN.json:IMAGES/": "your COCO-format annotations (polygon or RLE segmentations) and "
                             "image folder, letterboxed to image_size; streamed",
}
FIELDS = ("image", "instances", "boxes", "classes", "box_valid")


def load(spec: str, scene_cfg: instance_scenes.InstanceSceneConfig, image_size: int) -> Dataset:
    if spec == "scenes":
        splits = instance_scenes.load_instance_scenes(scene_cfg)
        data = {s: {k: a[k] for k in FIELDS} for s, a in splits.items()}
        return Dataset(data, image_info(scenes.CLASSES, data["train"]["image"], spec))
    if spec.startswith("coco:"):
        names, data = coco.load_splits(spec, image_size, masks=True)
        # Photos are never inverted at predict time, whatever their mean brightness.
        return Dataset(data, image_info(names, np.zeros((0, image_size, image_size, 3)), spec,
                                        dark_background=False))
    raise unknown("data set", spec, DATASETS)
