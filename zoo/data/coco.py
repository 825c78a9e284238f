"""COCO-format annotations (json plus an image folder) as fixed-shape arrays.

Shared by the tasks that read users' COCO data (boxes, instance masks, and through
`read_json`, `objects_per_image`, `checked_boxes` and `splits` person keypoints): every
image is letterboxed to one square size with its boxes (and masks) mapped alike, objects
padded to the largest count of any image. Every malformed case is a one-line `ZooError`.
"""

from collections.abc import Collection
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.data.images import letterbox, load_image
from zoo.data.loader import holdout_sizes, split_indices
from zoo.errors import ZooError

TOLERANCE = 1.0  # pixels a box may overhang its image (rounding in annotation tools)
SPLIT_SEED = 20240601


def load_splits(spec: str, size: int, *, masks: bool = False,
                ) -> tuple[list[str], dict[str, dict[str, np.ndarray]]]:
    """`coco:ANN.json:IMAGES/` as category names and train/val/test arrays (`load`),
    split 70/10/20 by image with a fixed seed."""
    ann, sep, images_dir = spec.removeprefix("coco:").partition(":")
    if not spec.startswith("coco:") or not sep or not ann or not images_dir:
        raise ZooError(f"--data {spec}: expected coco:ANNOTATIONS.json:IMAGES_DIR")
    names, arrays = load(Path(ann), Path(images_dir), size, masks=masks)
    idx = splits(len(arrays["image"]))
    return names, {s: {k: v[j] for k, v in arrays.items()} for s, j in idx.items()}


def splits(n: int) -> dict[str, np.ndarray]:
    """Seeded 70/10/20 train/val/test indices of n images."""
    return split_indices(n, holdout_sizes(n), SPLIT_SEED)


def load(ann_path: Path, images_dir: Path, size: int, *, masks: bool = False,
         ) -> tuple[list[str], dict[str, np.ndarray]]:
    """Category names and the arrays of every image, letterboxed to size x size.

    Crowd annotations (iscrowd=1) are left out; images without objects are kept.

    Returns:
      Names in category-id order, and "image" uint8 (N, S, S, 3), "boxes" float32
      (N, M, 4) pixel (x0, y0, x1, y1), "classes" int32 (N, M), "box_valid" bool (N, M);
      with `masks`, also "instances" uint8 (N, S, S): 0 background, j + 1 where object j
      is (where masks overlap, the smaller object is on top).

    Raises:
      ZooError: for unreadable json, missing keys or image files, an unknown category
        or image id, a box that is empty or outside its image, or (with `masks`) a
        missing or malformed segmentation.
    """
    coco = read_json(ann_path)
    categories = sorted(coco["categories"], key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(categories)}
    per_image = objects_per_image(coco, index, ann_path)
    most = max(1, max(len(a) for a in per_image.values()))
    if masks and most > 254:
        raise ZooError(f"{ann_path}: an image has {most} objects; instance masks hold at most 254")
    n = len(coco["images"])
    arrays = {"image": np.zeros((n, size, size, 3), np.uint8),
              "boxes": np.zeros((n, most, 4), np.float32),
              "classes": np.zeros((n, most), np.int32),
              "box_valid": np.zeros((n, most), bool)}
    if masks:
        arrays["instances"] = np.zeros((n, size, size), np.uint8)
    for i, record in enumerate(coco["images"]):
        image = load_image(images_dir / record["file_name"], None, 3)
        anns = per_image[record["id"]]
        xyxy = checked_boxes(anns, image.shape, ann_path, record["file_name"])
        arrays["image"][i], scale, offset = letterbox(image, size)
        arrays["boxes"][i, :len(anns)] = xyxy * np.tile(scale, 2) + np.tile(offset, 2)
        arrays["classes"][i, :len(anns)] = [index[a["category_id"]] for a in anns]
        arrays["box_valid"][i, :len(anns)] = True
        if masks:
            where = f"{ann_path}: image {record['file_name']}"
            arrays["instances"][i] = _instance_map(anns, image.shape[:2], size, where)
    names = [str(c.get("name", c["id"])) for c in categories]
    return names, arrays


def objects_per_image(coco: dict, category_ids: Collection, ann_path: Path,
                      keep: Collection | None = None) -> dict:
    """Image id -> its non-crowd annotations of the `keep` categories (default: all),
    every image and category id checked against the file's."""
    keep = category_ids if keep is None else keep
    per_image: dict = {img["id"]: [] for img in coco["images"]}
    for n, ann in enumerate(coco["annotations"]):
        where = f"{ann_path}: annotation {ann.get('id', n)}"
        if ann.get("category_id") not in category_ids:
            raise ZooError(f"{where} has category_id {ann.get('category_id')!r}, not one of the "
                           f"categories {sorted(category_ids)}")
        if ann.get("image_id") not in per_image:
            raise ZooError(f"{where} has image_id {ann.get('image_id')!r}, not one of the images")
        if not ann.get("iscrowd", 0) and ann["category_id"] in keep:
            per_image[ann["image_id"]].append(ann)
    if len(per_image) < 3:
        raise ZooError(f"{ann_path}: {len(per_image)} image(s); need at least 3 "
                       f"(train, val and test)")
    return per_image


def read_json(path: Path) -> dict:
    """The parsed annotation file, checked to hold images, annotations and categories."""
    import json

    if not path.is_file():
        raise ZooError(f"{path}: no such annotation file")
    try:
        coco = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(coco, dict):
        raise ZooError(f"{path}: not COCO format, a JSON object with images, annotations "
                       f"and categories")
    missing = [k for k in ("images", "annotations", "categories") if k not in coco]
    if missing:
        raise ZooError(f"{path}: not COCO format, missing {', '.join(missing)}")
    for section, fields in SCHEMA.items():
        _check_section(coco[section], section, fields, path)
    if not coco["categories"]:
        raise ZooError(f"{path}: no categories")
    return coco


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# The fields zoo reads, with what each must be: (test, description, required).
SCHEMA = {
    "categories": {"id": (_integer, "an integer", True),
                   "name": (lambda v: isinstance(v, str), "a string", False)},
    "images": {"id": (_integer, "an integer", True),
               "file_name": (lambda v: isinstance(v, str) and v != "", "a file name", True)},
    "annotations": {
        "image_id": (_integer, "an integer", True),
        "category_id": (_integer, "an integer", True),
        "bbox": (lambda v: isinstance(v, list) and len(v) == 4 and all(map(_number, v)),
                 "a list of 4 numbers [x, y, width, height]", True),
        "iscrowd": (lambda v: v in (0, 1) and not isinstance(v, (str, float)), "0 or 1", False)},
}


def _check_section(items, section: str, fields: dict, path: Path) -> None:
    """Every entry of `section` is an object whose fields have the types zoo reads."""
    if not isinstance(items, list):
        raise ZooError(f"{path}: {section!r} must be a list, not {type(items).__name__}")
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise ZooError(f"{path}: {section}[{n}] must be an object, not "
                           f"{type(item).__name__}")
        for name, (valid, description, required) in fields.items():
            if name not in item:
                if required:
                    raise ZooError(f"{path}: {section}[{n}] has no {name!r}; it needs "
                                   f"{description}")
            elif not valid(item[name]):
                raise ZooError(f"{path}: {section}[{n}] {name} is {item[name]!r}; it must be "
                               f"{description}")


def checked_boxes(anns: list, shape: tuple, ann_path: Path, file_name: str) -> np.ndarray:
    """(n, 4) x0 y0 x1 y1 of COCO [x, y, w, h] boxes, each checked to lie in its image."""
    h, w = shape[:2]
    out = np.zeros((len(anns), 4), np.float32)
    for j, ann in enumerate(anns):
        box = ann["bbox"]  # four numbers: `read_json` checked the form
        x, y, bw, bh = (float(v) for v in box)
        if bw <= 0 or bh <= 0 or x < -TOLERANCE or y < -TOLERANCE or \
                x + bw > w + TOLERANCE or y + bh > h + TOLERANCE:
            raise ZooError(f"{ann_path}: annotation {ann.get('id', j)} box {box} "
                           f"(x, y, width, height) is empty or outside its image {file_name} "
                           f"({w}x{h}); fix or remove it")
        out[j] = [max(x, 0), max(y, 0), min(x + bw, w), min(y + bh, h)]
    return out


def _instance_map(anns: list, shape: tuple[int, int], size: int, where: str) -> np.ndarray:
    """The letterboxed (size, size) id map of one image's objects, smallest on top."""
    decoded = [segmentation_mask(ann, *shape, f"{where} annotation {ann.get('id', j)}")
               for j, ann in enumerate(anns)]
    ids = np.zeros(shape, np.uint8)
    for j in sorted(range(len(anns)), key=lambda j: -int(decoded[j].sum())):
        ids[decoded[j]] = j + 1
    return letterbox(ids[..., None], size, resample=Image.Resampling.NEAREST)[0][..., 0]


def segmentation_mask(ann: dict, height: int, width: int, where: str) -> np.ndarray:
    """The (height, width) bool mask of a COCO segmentation: polygons, or RLE with
    compressed (string) or uncompressed (list) counts, decoded by pycocotools."""
    from pycocotools import mask as mask_utils

    seg = ann.get("segmentation")
    if isinstance(seg, list):
        if not seg or any(not isinstance(p, list) or len(p) < 6 or len(p) % 2 or
                          not all(isinstance(v, (int, float)) for v in p) for p in seg):
            raise ZooError(f"{where}: a polygon needs at least 3 (x, y) points as a flat list "
                           f"of numbers, [[x1, y1, x2, y2, x3, y3, ...], ...]")
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    elif isinstance(seg, dict) and {"size", "counts"} <= set(seg):
        if list(seg["size"]) != [height, width]:
            raise ZooError(f"{where}: RLE size {seg['size']} is not the image's "
                           f"[height, width] = [{height}, {width}]")
        counts = seg["counts"]
        runs = _compressed_runs(counts) if isinstance(counts, str) else counts
        if not isinstance(runs, list) or not all(isinstance(c, int) and c >= 0 for c in runs):
            raise ZooError(f"{where}: RLE counts must be a COCO-compressed string or a list of "
                           f"non-negative integers")
        if sum(runs) != height * width:  # pycocotools would write past its buffer
            raise ZooError(f"{where}: RLE counts cover {sum(runs)} pixels, not height x width "
                           f"= {height * width}")
        rle = (mask_utils.frPyObjects(seg, height, width) if isinstance(counts, list) else
               {"size": [height, width], "counts": counts.encode("ascii")})
    else:
        raise ZooError(f"{where}: no segmentation; instance masks need a polygon list or an "
                       f"RLE {{'size', 'counts'}} per object")
    return mask_utils.decode(rle).reshape(height, width).astype(bool)


def _compressed_runs(counts: str) -> list[int] | None:
    """The run lengths of a COCO-compressed RLE string (pycocotools' rleFrString, with
    bounds checks), or None if it is malformed."""
    runs, p = [], 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            if p >= len(counts) or not 48 <= ord(counts[p]) < 48 + 64:
                return None
            c = ord(counts[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs
