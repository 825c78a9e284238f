"""COCO-format annotation files and pycocotools' evaluation, shared by the tasks that
read them (detection boxes, pose keypoints).

Reading checks what every COCO task needs (valid JSON, the three lists, known image and
category ids) and says what is wrong in one line naming the file and annotation;
images are letterboxed to one square size so every batch has one shape.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.images import letterbox, load_image
from zoo.data.loader import holdout_sizes, split_indices
from zoo.errors import ZooError

SPLIT_SEED = 20240601
TOLERANCE = 1.0  # pixels an annotation may overhang its image (rounding in annotation tools)


def read(path: Path) -> dict[str, Any]:
    """The parsed annotation file, with "images", "annotations" and "categories".

    Raises:
      ZooError: for a missing file, invalid JSON, a missing list or no categories.
    """
    if not path.is_file():
        raise ZooError(f"{path}: no such annotation file")
    try:
        coco = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(coco, dict):
        raise ZooError(f"{path}: not COCO format, expected an object with images, "
                       f"annotations and categories")
    missing = [k for k in ("images", "annotations", "categories") if k not in coco]
    if missing:
        raise ZooError(f"{path}: not COCO format, missing {', '.join(missing)}")
    if not coco["categories"]:
        raise ZooError(f"{path}: no categories")
    return coco


def by_image(coco: Mapping[str, Any], path: Path, category_ids: Sequence[int],
             keep: Sequence[int] | None = None) -> dict[Any, list[dict]]:
    """Each image id's annotations (crowd ones left out), in file order.

    Args:
      category_ids: the categories an annotation may name.
      keep: the categories whose annotations are returned (default: all of them).

    Raises:
      ZooError: for an annotation naming an unknown category or image, or too few
        images to make train, val and test splits.
    """
    keep = set(category_ids if keep is None else keep)
    per_image: dict = {img["id"]: [] for img in coco["images"]}
    for n, ann in enumerate(coco["annotations"]):
        where = f"{path}: annotation {ann.get('id', n)}"
        if ann.get("category_id") not in category_ids:
            raise ZooError(f"{where} has category_id {ann.get('category_id')!r}, not one of the "
                           f"categories {sorted(category_ids)}")
        if ann.get("image_id") not in per_image:
            raise ZooError(f"{where} has image_id {ann.get('image_id')!r}, not one of the images")
        if not ann.get("iscrowd", 0) and ann["category_id"] in keep:
            per_image[ann["image_id"]].append(ann)
    if len(per_image) < 3:
        raise ZooError(f"{path}: {len(per_image)} image(s); need at least 3 "
                       f"(train, val and test)")
    return per_image


def letterboxed(coco: Mapping[str, Any], images_dir: Path, size: int
                ) -> Iterator[tuple[dict, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(image record, the image as read, its size x size letterbox, scale, offset) for
    every image of the file in order; a point p of the image lands at p * scale + offset."""
    for record in coco["images"]:
        image = load_image(images_dir / record["file_name"], None, 3)
        yield (record, image, *letterbox(image, size))


def checked_boxes(anns: Sequence[Mapping[str, Any]], shape: tuple[int, ...], path: Path,
                  file_name: str) -> np.ndarray:
    """(n, 4) x0 y0 x1 y1 of the annotations' COCO [x, y, w, h] boxes, each checked to
    lie in its image (of `shape`) and clipped to it.

    Raises:
      ZooError: for a missing, empty or outside box, naming the annotation.
    """
    h, w = shape[:2]
    out = np.zeros((len(anns), 4), np.float32)
    for j, ann in enumerate(anns):
        box = ann.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and
                all(isinstance(v, (int, float)) for v in box)):
            raise ZooError(f"{path}: annotation {ann.get('id', j)} has bbox {box!r}; expected "
                           f"[x, y, width, height]")
        x, y, bw, bh = (float(v) for v in box)
        if bw <= 0 or bh <= 0 or x < -TOLERANCE or y < -TOLERANCE or \
                x + bw > w + TOLERANCE or y + bh > h + TOLERANCE:
            raise ZooError(f"{path}: annotation {ann.get('id', j)} box {box} "
                           f"(x, y, width, height) is empty or outside its image {file_name} "
                           f"({w}x{h}); fix or remove it")
        out[j] = [max(x, 0), max(y, 0), min(x + bw, w), min(y + bh, h)]
    return out


def splits(n: int) -> dict[str, np.ndarray]:
    """Seeded 70/10/20 train/val/test image indices."""
    return split_indices(n, holdout_sizes(n), SPLIT_SEED)


def evaluate(images: list[dict], annotations: list[dict], categories: list[dict],
             results: np.ndarray | list[dict], iou_type: str,
             params: Mapping[str, Any] | None = None):
    """pycocotools' COCOeval of `results` against in-memory ground truth, run quietly.

    Args:
      results: detections in any form `COCO.loadRes` takes (an (N, 7) array, or dicts).
      params: COCOeval.Params fields to set, e.g. {"kpt_oks_sigmas": ...}.

    Returns:
      The evaluator after evaluate, accumulate and summarize (`.stats`, `.eval`).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), iou_type)
        for key, value in (params or {}).items():
            setattr(evaluator.params, key, value)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator
