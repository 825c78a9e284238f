"""Data sets for detection: generated digit scenes, or COCO-format json plus images.

Every split holds "image" uint8 (N, S, S, C), "boxes" float32 (N, M, 4) pixel
(x0, y0, x1, y1), "classes" int32 (N, M) and "box_valid" bool (N, M): boxes padded to
the data set's largest count M, so every batch has one shape.
"""

from zoo.data import coco, scenes
from zoo.data.images import image_info
from zoo.errors import unknown
from zoo.task import Dataset

DATASETS = {
    "scenes": "digits from the embedded MNIST sample on a canvas, one box per digit "
              "(offline; the default)",
    "coco:ANN.json:IMAGES/": "your COCO-format annotations and image folder (any image "
                             "size: letterboxed to image_size, boxes mapped to match)",
}


def load(spec: str, scene_cfg: scenes.SceneConfig, image_size: int) -> Dataset:
    if spec == "scenes":
        splits = scenes.load_scenes(scene_cfg)
        fields = ("image", "boxes", "classes", "box_valid")
        data = {s: {k: a[k] for k in fields} for s, a in splits.items()}
        return Dataset(data, image_info(scenes.CLASSES, data["train"]["image"], spec))
    if spec.startswith("coco:"):
        names, data = coco.load_splits(spec, image_size)
        # Photos are never inverted at predict time, whatever their mean brightness.
        return Dataset(data, image_info(names, data["train"]["image"], spec,
                                        dark_background=False))
    raise unknown("data set", spec, DATASETS)
