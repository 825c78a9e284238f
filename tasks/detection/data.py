"""Data sets for detection: generated digit scenes, or COCO-format json plus images.

Every split holds "image" uint8 (N, S, S, C), "boxes" float32 (N, M, 4) pixel
(x0, y0, x1, y1), "classes" int32 (N, M) and "box_valid" bool (N, M): boxes padded to
the data set's largest count M, so every batch has one shape.
"""

import json
from pathlib import Path

import numpy as np

from zoo.data import scenes
from zoo.data.images import image_info, letterbox, load_image
from zoo.data.loader import holdout_sizes, split_indices
from zoo.errors import ZooError, unknown
from zoo.task import Dataset

DATASETS = {
    "scenes": "digits from the embedded MNIST sample on a canvas, one box per digit "
              "(offline; the default)",
    "coco:ANN.json:IMAGES/": "your COCO-format annotations and image folder (any image "
                             "size: letterboxed to image_size, boxes mapped to match)",
}
SPLIT_SEED = 20240601
TOLERANCE = 1.0  # pixels a box may overhang its image (rounding in annotation tools)


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
    coco = _read_json(ann_path)
    categories = sorted(coco["categories"], key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(categories)}
    per_image: dict = {img["id"]: [] for img in coco["images"]}
    for n, ann in enumerate(coco["annotations"]):
        where = f"{ann_path}: annotation {ann.get('id', n)}"
        if ann.get("category_id") not in index:
            raise ZooError(f"{where} has category_id {ann.get('category_id')!r}, not one of the "
                           f"categories {sorted(index)}")
        if ann.get("image_id") not in per_image:
            raise ZooError(f"{where} has image_id {ann.get('image_id')!r}, not one of the images")
        if not ann.get("iscrowd", 0):
            per_image[ann["image_id"]].append(ann)
    if len(per_image) < 3:
        raise ZooError(f"{ann_path}: {len(per_image)} image(s); need at least 3 "
                       f"(train, val and test)")
    most = max(1, max(len(a) for a in per_image.values()))
    n = len(coco["images"])
    images = np.zeros((n, size, size, 3), np.uint8)
    boxes = np.zeros((n, most, 4), np.float32)
    classes = np.zeros((n, most), np.int32)
    valid = np.zeros((n, most), bool)
    for i, record in enumerate(coco["images"]):
        image = load_image(images_dir / record["file_name"], None, 3)
        anns = per_image[record["id"]]
        xyxy = _checked_boxes(anns, image.shape, ann_path, record["file_name"])
        images[i], scale, offset = letterbox(image, size)
        boxes[i, :len(anns)] = xyxy * np.tile(scale, 2) + np.tile(offset, 2)
        classes[i, :len(anns)] = [index[a["category_id"]] for a in anns]
        valid[i, :len(anns)] = True
    idx = split_indices(n, holdout_sizes(n), SPLIT_SEED)
    data = {s: {"image": images[j], "boxes": boxes[j], "classes": classes[j],
                "box_valid": valid[j]} for s, j in idx.items()}
    names = [str(c.get("name", c["id"])) for c in categories]
    # Photos are never inverted at predict time, whatever their mean brightness.
    return Dataset(data, image_info(names, images, spec, dark_background=False))


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ZooError(f"{path}: no such annotation file")
    try:
        coco = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"{path}: not valid JSON ({e})") from None
    missing = [k for k in ("images", "annotations", "categories") if k not in coco]
    if missing:
        raise ZooError(f"{path}: not COCO format, missing {', '.join(missing)}")
    if not coco["categories"]:
        raise ZooError(f"{path}: no categories")
    return coco


def _checked_boxes(anns: list, shape: tuple, ann_path: Path, file_name: str) -> np.ndarray:
    """(n, 4) x0 y0 x1 y1 of COCO [x, y, w, h] boxes, each checked to lie in its image."""
    h, w = shape[:2]
    out = np.zeros((len(anns), 4), np.float32)
    for j, ann in enumerate(anns):
        x, y, bw, bh = (float(v) for v in ann["bbox"])
        if bw <= 0 or bh <= 0 or x < -TOLERANCE or y < -TOLERANCE or \
                x + bw > w + TOLERANCE or y + bh > h + TOLERANCE:
            raise ZooError(f"{ann_path}: annotation {ann.get('id', j)} box {ann['bbox']} "
                           f"(x, y, width, height) is empty or outside its image {file_name} "
                           f"({w}x{h}); fix or remove it")
        out[j] = [max(x, 0), max(y, 0), min(x + bw, w), min(y + bh, h)]
    return out

