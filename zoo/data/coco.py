"""Images with boxes, streamed: COCO-format annotations (and Pascal VOC's, `zoo.data.voc`).

The annotation file is read once into compact arrays (file names, image sizes, every
box and category in flat arrays with per-image offsets); no image is opened up front.
`BoxedImages` decodes an image when a batch needs it, letterboxes it to a square and maps
its boxes alike, padded to the data set's largest box count (one compiled shape); with
`masks`, it also decodes the objects' segmentations (polygons or RLE, by pycocotools)
into one instance map. `load_splits` is a `coco:ANN.json:IMAGES/` data spec, split.

Tasks that read COCO files their own way (person keypoints) share the checks through
`read_json`, `objects_per_image`, `checked_boxes` and `splits`; per-object fields of
fixed length (keypoints, area) also come with `read_coco(..., keep=("keypoints",))`:
each becomes one array with a row per annotation. Every malformed case is a one-line
`ZooError`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.data.images import letterbox, load_image, opened
from zoo.data.loader import SPLIT_SEED, holdout_sizes, split_indices
from zoo.data.sources import Example, Source, files_fingerprint
from zoo.errors import ZooError

TOLERANCE = 1.0  # pixels a box may overhang its image (rounding in annotation tools)
MOST_INSTANCES = 254  # objects an instance map (uint8, 0 = background) can hold


def load_splits(spec: str, size: int, *, masks: bool = False) -> tuple[list[str], dict[str, Source]]:
    """`coco:ANN.json:IMAGES/` as category names and train/val/test `BoxedImages`, split
    70/10/20 by image with a fixed seed. Only the annotations are read here."""
    ann, sep, images_dir = spec.removeprefix("coco:").partition(":")
    if not spec.startswith("coco:") or not sep or not ann or not images_dir:
        raise ZooError(f"--data {spec}: expected coco:ANNOTATIONS.json:IMAGES_DIR")
    index = read_coco(ann, images_dir, masks=masks)
    if masks and index.most_objects() > MOST_INSTANCES:
        raise ZooError(f"{ann}: an image has {index.most_objects()} objects; instance masks "
                       f"hold at most {MOST_INSTANCES}")
    images = BoxedImages(index, size, masks=masks)
    return index.names, {s: images.subset(j) for s, j in splits(len(index)).items()}


def splits(n: int) -> dict[str, np.ndarray]:
    """Seeded 70/10/20 train/val/test indices of n images."""
    return split_indices(n, holdout_sizes(n), SPLIT_SEED)


@dataclasses.dataclass
class CocoIndex:
    """The annotations of a COCO file, one entry per image, without decoding any image.

    Attributes:
      root: the image folder.
      files: image file names relative to `root`.
      sizes: (n, 2) width, height of each image (from the JSON, else its file header).
      offsets: (n + 1,) the annotations of image i are rows offsets[i]:offsets[i + 1].
      boxes: (m, 4) float32 x0, y0, x1, y1 in pixels, checked to lie in the image.
      classes: (m,) int32 index into `names`.
      names: category names, in order of category id.
      kept: extra annotation fields asked for with `keep` (one row per annotation).
      segmentations: with `masks`, the "segmentation" of each annotation (else empty).
    """

    root: str
    files: np.ndarray
    sizes: np.ndarray
    offsets: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    names: list[str]
    kept: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    segmentations: list = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def objects(self, index: int) -> slice:
        return slice(int(self.offsets[index]), int(self.offsets[index + 1]))

    def most_objects(self) -> int:
        return max(1, int(np.diff(self.offsets).max(initial=0)))


def read_coco(ann_path: str | Path, images_dir: str | Path, keep: Sequence[str] = (),
              *, masks: bool = False) -> CocoIndex:
    """Reads a COCO instances file. Crowd annotations (iscrowd=1) are left out; images
    without boxes are kept.

    Raises:
      ZooError: for unreadable JSON, missing keys or fields of the wrong type, fewer
        than 3 images, an unknown category or image id, a box that is empty or lies
        outside its image, or (with `masks`) a missing or malformed segmentation.
    """
    ann_path = Path(ann_path)
    coco = read_json(ann_path)
    categories = sorted(coco["categories"], key=lambda c: c["id"])
    category = {c["id"]: i for i, c in enumerate(categories)}
    images = coco["images"]
    per_image = objects_per_image(coco, category, ann_path)
    del coco["annotations"]
    sizes = np.array([_size(img, Path(images_dir)) for img in images], np.int64).reshape(-1, 2)
    groups = [per_image[img["id"]] for img in images]
    anns = [ann for group in groups for ann in group]
    boxes = np.zeros((len(anns), 4), np.float32)
    row = 0
    for (w, h), img, group in zip(sizes, images, groups):
        boxes[row:row + len(group)] = checked_boxes(group, (h, w), ann_path, img["file_name"])
        if masks:
            for j, ann in enumerate(group):
                checked_rle(ann, int(h), int(w), f"{ann_path}: annotation {ann.get('id', row + j)}")
        row += len(group)
    return CocoIndex(
        root=str(images_dir), files=np.asarray([img["file_name"] for img in images], np.str_),
        sizes=sizes, offsets=np.concatenate([[0], np.cumsum([len(g) for g in groups])]),
        boxes=boxes, classes=np.asarray([category[a["category_id"]] for a in anns], np.int32),
        names=[str(c.get("name", c["id"])) for c in categories],
        kept={key: np.asarray([a.get(key) for a in anns], np.float32) for key in keep},
        segmentations=[a.get("segmentation") for a in anns] if masks else [])


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


def _size(image: dict, root: Path) -> tuple[int, int]:
    """(width, height) from the image record, else from the file's header (not decoded)."""
    if image.get("width") and image.get("height"):
        return int(image["width"]), int(image["height"])
    with opened(root / image["file_name"]) as img:
        return img.size



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
    """(n, 4) x0 y0 x1 y1 of COCO [x, y, w, h] boxes, each checked to lie in its image
    of (height, width, ...) `shape` (`checked_box`)."""
    h, w = shape[:2]
    out = np.zeros((len(anns), 4), np.float32)
    for j, ann in enumerate(anns):
        where = f"{ann_path}: annotation {ann.get('id', j)}"  # `read_json` checked the form
        out[j] = checked_box(ann["bbox"], (w, h), where, file_name)
    return out


def checked_box(xywh: Sequence[float], size: Sequence[int], where: str, file: str) -> np.ndarray:
    """x0 y0 x1 y1 of a COCO [x, y, width, height] box, clipped to an image of
    (width, height) `size`, which it must lie in (within `TOLERANCE` pixels)."""
    w, h = size
    x, y, bw, bh = (float(v) for v in xywh)
    if bw <= 0 or bh <= 0 or x < -TOLERANCE or y < -TOLERANCE or \
            x + bw > w + TOLERANCE or y + bh > h + TOLERANCE:
        raise ZooError(f"{where} box {list(xywh)} (x, y, width, height) is empty or outside "
                       f"its image {file} ({w}x{h}); fix or remove it")
    return np.array([max(x, 0), max(y, 0), min(x + bw, w), min(y + bh, h)], np.float32)


class BoxedImages(Source):
    """Images with boxes: "image" uint8 (S, S, 3) letterboxed, "boxes" float32 (M, 4)
    pixel x0 y0 x1 y1 in the square, "classes" int32 (M,), "box_valid" bool (M,), boxes
    padded to `most` M; with `masks`, "instances" uint8 (S, S): 0 background, j + 1
    where object j is (where masks overlap, the smaller object is on top)."""

    def __init__(self, index: CocoIndex, size: int, most: int | None = None,
                 masks: bool = False):
        self.index, self.size, self.masks = index, size, masks
        self.most = most or index.most_objects()

    def __len__(self) -> int:
        return len(self.index)

    def origin(self, i: int) -> str:
        return f"{self.index.root}/{self.index.files[i]}"

    def read(self, i: int) -> Example:
        image = load_image(self.origin(i), None, 3)
        if tuple(image.shape[1::-1]) != tuple(self.index.sizes[i]):
            w, h = self.index.sizes[i]
            raise ZooError(f"{self.origin(i)}: the image is {image.shape[1]}x{image.shape[0]} "
                           f"but its annotations say {w}x{h}")
        objects = self.index.objects(i)
        example = {"image": image, "boxes": self.index.boxes[objects],
                   "classes": self.index.classes[objects]}
        if self.masks:
            example["instances"] = instance_map(self.index.segmentations[objects],
                                                image.shape[:2], self.origin(i))
        return example

    def finish(self, example: Example) -> Example:
        square, scale, offset = letterbox(example["image"], self.size)
        n = len(example["boxes"])
        boxes = np.zeros((self.most, 4), np.float32)
        classes = np.zeros(self.most, np.int32)
        valid = np.zeros(self.most, bool)
        boxes[:n] = example["boxes"] * np.tile(scale, 2) + np.tile(offset, 2)
        classes[:n], valid[:n] = example["classes"], True
        out = {"image": square, "boxes": boxes, "classes": classes, "box_valid": valid}
        if self.masks:
            out["instances"] = letterbox(example["instances"][..., None], self.size,
                                         resample=Image.Resampling.NEAREST)[0][..., 0]
        return out

    def fingerprint(self) -> str:
        return files_fingerprint(self.index.root, self.index.files, self.size, self.most,
                                 self.masks, self.index.boxes.tobytes(),
                                 self.index.classes.tobytes())


def instance_map(segmentations: list, shape: tuple[int, int], where: str) -> np.ndarray:
    """The (height, width) id map of one image's objects (j + 1 for object j), the
    smallest on top."""
    decoded = [segmentation_mask({"segmentation": seg}, *shape, f"{where}: object {j}")
               for j, seg in enumerate(segmentations)]
    ids = np.zeros(shape, np.uint8)
    for j in sorted(range(len(decoded)), key=lambda j: -int(decoded[j].sum())):
        ids[decoded[j]] = j + 1
    return ids


def segmentation_mask(ann: dict, height: int, width: int, where: str) -> np.ndarray:
    """The (height, width) bool mask of a COCO segmentation: polygons, or RLE with
    compressed (string) or uncompressed (list) counts, decoded by pycocotools."""
    from pycocotools import mask as mask_utils

    return mask_utils.decode(checked_rle(ann, height, width, where)).reshape(
        height, width).astype(bool)


def checked_rle(ann: dict, height: int, width: int, where: str) -> dict:
    """The pycocotools RLE of a COCO segmentation, every malformed case a `ZooError`
    (checked when the annotations are read, decoded when a batch needs the mask)."""
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
    return rle


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
