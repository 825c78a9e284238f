"""COCO average precision with pycocotools: predictions collected on the host, scored once.

Shared by every task scored the COCO way (boxes, instance masks, keypoints): ground
truth and predictions go in as plain arrays per image and come out as AP over IoU (or
OKS) 0.50:0.95, AP at 0.50 and AP per class, exactly as COCOeval computes them.
"""

import contextlib
import io
from collections.abc import Mapping, Sequence
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


# Only area "all" is reported: COCOeval's default small/medium/large ranges would
# triple its per-image matching (the most of its time) for figures nobody reads.
ALL_AREAS = {"areaRng": [[0.0, 1e5**2]], "areaRngLbl": ["all"]}


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
    evaluator = _evaluate(images, annotations, [{"id": c} for c in range(num_classes)],
                          results, iou_type, ALL_AREAS)
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


# COCOeval's keypoint summary: AP@[.5:.95], AP50, AP75, then medium and large
# objects (areas 32^2-96^2 and above), then the same five for recall.
KEYPOINT_STATS = {"ap": 0, "ap50": 1, "ap75": 2, "ar": 5}


def keypoint_ap(truth: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                poses: Sequence[tuple[np.ndarray, np.ndarray]],
                sigmas: Sequence[float]) -> dict[str, float]:
    """COCO keypoint AP@[.5:.95], AP50, AP75 and AR by pycocotools' COCOeval.

    Object keypoint similarity (OKS) plays the part of box IoU: the mean over a
    person's labelled joints of exp(-d^2 / (2 area (2 sigma)^2)).

    Args:
      truth: per image, (keypoints (n, K, 3) pixel x, y, visibility; boxes (n, 4)
        x0 y0 x1 y1; areas (n,)). People with no labelled joint are ignored, as in COCO.
      poses: per image, (keypoints (p, K, 2), scores (p,)); COCO keeps the best 20.
      sigmas: the skeleton's per-joint OKS sigmas.
    """
    images, annotations, results = [], [], []
    for image_id, ((joints, boxes, areas), (found, scores)) in enumerate(zip(truth, poses)):
        images.append({"id": image_id})
        for person, box, area in zip(joints, np.asarray(boxes, np.float64), areas):
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                "keypoints": np.asarray(person, np.float64).ravel().tolist(),
                "num_keypoints": int((person[:, 2] > 0).sum()), "area": float(area),
                "bbox": [*box[:2], *(box[2:] - box[:2])], "iscrowd": 0})
        for person, score in zip(found, scores):
            xyv = np.concatenate([person, np.ones((len(person), 1))], 1)
            results.append({"image_id": image_id, "category_id": 1, "score": float(score),
                            "keypoints": xyv.ravel().tolist()})
    if not results or not any(a["num_keypoints"] for a in annotations):
        return {name: 0.0 for name in KEYPOINT_STATS}  # nothing to match: COCOeval would fail
    evaluator = _evaluate(images, annotations, [{"id": 1, "name": "person"}], results,
                          "keypoints", {"kpt_oks_sigmas": np.asarray(sigmas, np.float64)})
    return {name: max(float(evaluator.stats[i]), 0.0) for name, i in KEYPOINT_STATS.items()}


def _evaluate(images: list[dict], annotations: list[dict], categories: list[dict],
              results: list[dict], iou_type: str, params: Mapping[str, Any] | None = None):
    """pycocotools' COCOeval of `results` against in-memory ground truth, run quietly,
    after evaluate, accumulate and summarize (`.stats`, `.eval`); `params` are
    COCOeval.Params fields to set, e.g. {"kpt_oks_sigmas": ...}."""
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
