"""Data sets for detection: generated digit scenes, or COCO-format json plus images.

Every split holds "image" uint8 (N, S, S, C), "boxes" float32 (N, M, 4) pixel
(x0, y0, x1, y1), "classes" int32 (N, M) and "box_valid" bool (N, M): boxes padded to
the data set's largest count M, so every batch has one shape.
"""

from pathlib import Path

import numpy as np

from zoo.data import coco, scenes
from zoo.data.images import image_info
from zoo.errors import ZooError, unknown
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
        ann, sep, images_dir = spec.removeprefix("coco:").partition(":")
        if not sep or not ann or not images_dir:
            raise ZooError(f"--data {spec}: expected coco:ANNOTATIONS.json:IMAGES_DIR")
        return load_coco(Path(ann), Path(images_dir), image_size, spec)
    raise unknown("data set", spec, DATASETS)


def load_coco(ann_path: Path, images_dir: Path, size: int, spec: str) -> Dataset:
    """COCO json + images, letterboxed to size x size, split 70/10/20 by image.

    Crowd annotations (iscrowd=1) are left out. Images without boxes are kept.

    Raises:
      ZooError: for unreadable json, missing keys or image files, an unknown
        category id, or a box that is empty or lies outside its image.
    """
    parsed = coco.read(ann_path)
    categories = sorted(parsed["categories"], key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(categories)}
    per_image = coco.by_image(parsed, ann_path, list(index))
    most = max(1, max(len(a) for a in per_image.values()))
    n = len(parsed["images"])
    images = np.zeros((n, size, size, 3), np.uint8)
    boxes = np.zeros((n, most, 4), np.float32)
    classes = np.zeros((n, most), np.int32)
    valid = np.zeros((n, most), bool)
    for i, (record, image, square, scale, offset) in enumerate(
            coco.letterboxed(parsed, images_dir, size)):
        anns = per_image[record["id"]]
        xyxy = coco.checked_boxes(anns, image.shape, ann_path, record["file_name"])
        images[i] = square
        boxes[i, :len(anns)] = xyxy * np.tile(scale, 2) + np.tile(offset, 2)
        classes[i, :len(anns)] = [index[a["category_id"]] for a in anns]
        valid[i, :len(anns)] = True
    data = {s: {"image": images[j], "boxes": boxes[j], "classes": classes[j],
                "box_valid": valid[j]} for s, j in coco.splits(n).items()}
    names = [str(c.get("name", c["id"])) for c in categories]
    # Photos are never inverted at predict time, whatever their mean brightness.
    return Dataset(data, image_info(names, images, spec, dark_background=False))

