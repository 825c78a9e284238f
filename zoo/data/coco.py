"""Images with boxes, streamed: COCO-format annotations (and Pascal VOC's, `zoo.data.voc`).

The annotation file is read once into compact arrays (file names, image sizes, every
box and category in flat arrays with per-image offsets); no image is opened up front.
`BoxedImages` decodes an image when a batch needs it, letterboxes it to a square and maps
its boxes alike, padded to the data set's largest box count (one compiled shape).

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
from zoo.data.sources import Example, Source, files_fingerprint
from zoo.errors import ZooError

TOLERANCE = 1.0  # pixels a box may overhang its image (rounding in annotation tools)


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
    """

    root: str
    files: np.ndarray
    sizes: np.ndarray
    offsets: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    names: list[str]
    kept: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.files)

    def objects(self, index: int) -> slice:
        return slice(int(self.offsets[index]), int(self.offsets[index + 1]))

    def most_objects(self) -> int:
        return max(1, int(np.diff(self.offsets).max(initial=0)))


def read_coco(ann_path: str | Path, images_dir: str | Path,
              keep: Sequence[str] = ()) -> CocoIndex:
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
            boxes[row] = checked_box(ann["bbox"], sizes[i], f"{ann_path}: annotation "
                                     f"{ann.get('id', row)}", images[i]["file_name"])
            row += 1
    return CocoIndex(
        root=str(images_dir), files=np.asarray([img["file_name"] for img in images], np.str_),
        sizes=sizes, offsets=np.concatenate([[0], np.cumsum([len(g) for g in per_image])]),
        boxes=boxes, classes=np.asarray([category[a["category_id"]] for a in anns], np.int32),
        names=[str(c.get("name", c["id"])) for c in categories],
        kept={key: np.asarray([a.get(key) for a in anns], np.float32) for key in keep})


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
    padded to `most` M."""

    def __init__(self, index: CocoIndex, size: int, most: int | None = None):
        self.index, self.size = index, size
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
        return {"image": image, "boxes": self.index.boxes[objects],
                "classes": self.index.classes[objects]}

    def finish(self, example: Example) -> Example:
        square, scale, offset = letterbox(example["image"], self.size)
        n = len(example["boxes"])
        boxes = np.zeros((self.most, 4), np.float32)
        classes = np.zeros(self.most, np.int32)
        valid = np.zeros(self.most, bool)
        boxes[:n] = example["boxes"] * np.tile(scale, 2) + np.tile(offset, 2)
        classes[:n], valid[:n] = example["classes"], True
        return {"image": square, "boxes": boxes, "classes": classes, "box_valid": valid}

    def fingerprint(self) -> str:
        return files_fingerprint(self.index.root, self.index.files, self.size, self.most,
                                 self.index.boxes.tobytes(), self.index.classes.tobytes())
