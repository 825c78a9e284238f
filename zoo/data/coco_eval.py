"""COCO average precision with pycocotools: predictions collected on the host, scored once.

Shared by every task scored the COCO way (boxes, instance masks): ground truth and
predictions go in as plain arrays per image and come out as AP over IoU 0.50:0.95,
AP at 0.50 and AP per class, exactly as COCOeval computes them.
"""

import contextlib
import io
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

IouType = Literal["bbox", "segm"]


def rle_encode(masks: np.ndarray) -> list[dict]:
    """COCO run-length encodings of (n, H, W) binary masks ("counts" as a str: JSON-able)."""
    from pycocotools import mask as mask_utils

    masks = np.asarray(masks, np.uint8)
    if not len(masks):
        return []
    encoded = mask_utils.encode(np.asfortranarray(np.moveaxis(masks, 0, -1)))
    return [{"size": list(map(int, e["size"])), "counts": e["counts"].decode("ascii")}
            for e in encoded]


def coco_ap(truth: Sequence[dict[str, np.ndarray]], predictions: Sequence[dict[str, np.ndarray]],
            num_classes: int, iou_type: IouType = "bbox") -> dict[str, Any]:
    """COCO AP@[.5:.95], AP@0.5 and per-class AP, by pycocotools' COCOeval.

    Args:
      truth: per image {"boxes" (n, 4) x0 y0 x1 y1, "classes" (n,)} and, for "segm",
        "masks" (n, H, W) bool.
      predictions: per image the same plus "scores" (k,).
      iou_type: "bbox" matches boxes, "segm" matches masks.

    Returns:
      {"ap", "ap50", "ap_per_class"}; a class without ground truth has AP None.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for image_id, (gt, found) in enumerate(zip(truth, predictions)):
        height, width = np.shape(gt["masks"])[-2:] if iou_type == "segm" else (0, 0)
        images.append({"id": image_id, "height": int(height), "width": int(width)})
        for record in _records(gt, iou_type):
            annotations.append({**record, "id": len(annotations) + 1, "image_id": image_id,
                                "iscrowd": 0})
        results += [{**record, "image_id": image_id} for record in _records(found, iou_type)]
    if not annotations or not results:  # nothing to match: COCOeval would fail
        present = {a["category_id"] for a in annotations}
        return {"ap": 0.0, "ap50": 0.0,
                "ap_per_class": [0.0 if c in present else None for c in range(num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": c} for c in range(num_classes)]}
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # (iou threshold, recall, class) at area "all" and the most detections (100)
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    per_class = []
    for c in range(num_classes):
        p = precision[:, :, c]
        per_class.append(round(float(p[p > -1].mean()), 6) if (p > -1).any() else None)
    return {"ap": float(evaluator.stats[0]), "ap50": float(evaluator.stats[1]),
            "ap_per_class": per_class}


def _records(image: dict[str, np.ndarray], iou_type: IouType) -> list[dict]:
    """One image's objects as COCO annotation/result fields (no ids)."""
    boxes = np.asarray(image["boxes"], np.float64).reshape(-1, 4)
    xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])
    records = [{"category_id": int(c), "bbox": b.tolist(), "area": float(b[2] * b[3])}
               for b, c in zip(xywh, image["classes"])]
    if iou_type == "segm":
        for record, rle, mask in zip(records, rle_encode(image["masks"]), image["masks"]):
            record.update(segmentation=rle, area=float(np.count_nonzero(mask)))
    if "scores" in image:
        for record, score in zip(records, image["scores"]):
            record["score"] = float(score)
    return records
