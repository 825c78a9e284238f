"""Images with boxes, streamed: COCO-format annotations (and Pascal VOC's, `zoo.data.voc`).

The annotation file is read once into compact arrays (file names, image sizes, every
box and category in flat arrays with per-image offsets); no image is opened up front.
`BoxedImages` decodes an image when a batch needs it, letterboxes it to a square and maps
its boxes alike, padded to the data set's largest box count (one compiled shape); with
`masks`, it also decodes the objects' segmentations (polygons or RLE, by pycocotools)
into one instance map. `load_splits` is a `coco:ANN.json:IMAGES/` data spec, split.

Tasks with other per-object fields of fixed length (keypoints, area) read them with
`read_coco(..., keep=("keypoints",))`: each becomes one array with a row per annotation.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.data.images import letterbox, load_image
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
    n = len(index)
    if n < 3:
        raise ZooError(f"{ann}: {n} image(s); need at least 3 (train, val and test)")
    if masks and index.most_objects() > MOST_INSTANCES:
        raise ZooError(f"{ann}: an image has {index.most_objects()} objects; instance masks "
                       f"hold at most {MOST_INSTANCES}")
    images = BoxedImages(index, size, masks=masks)
    idx = split_indices(n, holdout_sizes(n), SPLIT_SEED)
    return index.names, {s: images.subset(j) for s, j in idx.items()}


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
      ZooError: for unreadable JSON, missing keys, an unknown category or image id, or
        a box that is empty or lies outside its image.
    """
    ann_path = Path(ann_path)
    coco = _read_json(ann_path)
    categories = sorted(coco["categories"], key=lambda c: c["id"])
    category = {c["id"]: i for i, c in enumerate(categories)}
    images = coco["images"]
    position = {img["id"]: i for i, img in enumerate(images)}
    per_image: list[list[dict]] = [[] for _ in images]
    for n, ann in enumerate(coco["annotations"]):
        where = f"{ann_path}: annotation {ann.get('id', n)}"
        if ann.get("category_id") not in category:
            raise ZooError(f"{where} has category_id {ann.get('category_id')!r}, not one of the "
                           f"categories {sorted(category)}")
        if ann.get("image_id") not in position:
            raise ZooError(f"{where} has image_id {ann.get('image_id')!r}, not one of the images")
        if not ann.get("iscrowd", 0):
            per_image[position[ann["image_id"]]].append(ann)
    del coco["annotations"]
    sizes = np.array([_size(img, Path(images_dir)) for img in images], np.int64).reshape(-1, 2)
    anns = [ann for group in per_image for ann in group]
    boxes = np.zeros((len(anns), 4), np.float32)
    row = 0
    for i, group in enumerate(per_image):
        for ann in group:
            where = f"{ann_path}: annotation {ann.get('id', row)}"
            boxes[row] = checked_box(ann["bbox"], sizes[i], where, images[i]["file_name"])
            if masks:
                checked_rle(ann, int(sizes[i][1]), int(sizes[i][0]), where)
            row += 1
    return CocoIndex(
        root=str(images_dir), files=np.asarray([img["file_name"] for img in images], np.str_),
        sizes=sizes, offsets=np.concatenate([[0], np.cumsum([len(g) for g in per_image])]),
        boxes=boxes, classes=np.asarray([category[a["category_id"]] for a in anns], np.int32),
        names=[str(c.get("name", c["id"])) for c in categories],
        kept={key: np.asarray([a.get(key) for a in anns], np.float32) for key in keep},
        segmentations=[a.get("segmentation") for a in anns] if masks else [])


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


def _size(image: dict, root: Path) -> tuple[int, int]:
    """(width, height) from the image record, else from the file's header (not decoded)."""
    if image.get("width") and image.get("height"):
        return int(image["width"]), int(image["height"])
    try:
        with Image.open(root / image["file_name"]) as img:
            return img.size
    except OSError as e:
        raise ZooError(f"{root / image['file_name']}: unreadable image ({e}); fix or remove "
                       f"it, or give its width and height in the annotations") from None


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
