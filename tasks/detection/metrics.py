"""COCO mAP with pycocotools: detections collected on the host, scored once per split."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from zoo.data import coco
from zoo.task import Metrics


def coco_map(truth: Sequence[tuple[np.ndarray, np.ndarray]],
             detections: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
             num_classes: int) -> dict[str, Any]:
    """COCO box mAP@[.5:.95], mAP@0.5 and per-class AP, by pycocotools' COCOeval.

    Args:
      truth: per image, (boxes (n, 4) x0 y0 x1 y1, classes (n,)).
      detections: per image, (boxes (k, 4), scores (k,), classes (k,)).

    Returns:
      {"map", "map50", "ap_per_class"}; a class without ground truth has AP None.
    """
    images, annotations, results = [], [], []
    for image_id, ((gt_boxes, gt_classes), (boxes, scores, classes)) in enumerate(
            zip(truth, detections)):
        images.append({"id": image_id})
        for box, cls in zip(_xywh(gt_boxes), gt_classes):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(cls), "bbox": box.tolist(),
                                "area": float(box[2] * box[3]), "iscrowd": 0})
        rows = np.column_stack([np.full(len(scores), image_id), _xywh(boxes), scores, classes])
        results.append(rows)
    results = np.concatenate(results) if results else np.zeros((0, 7))
    if not annotations or not len(results):  # nothing to match: COCOeval would fail
        present = {a["category_id"] for a in annotations}
        return {"map": 0.0, "map50": 0.0,
                "ap_per_class": [0.0 if c in present else None for c in range(num_classes)]}
    evaluator = coco.evaluate(images, annotations, [{"id": c} for c in range(num_classes)],
                              results, "bbox")
    # (iou threshold, recall, class) at area "all" and the most detections (100)
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    per_class = []
    for c in range(num_classes):
        p = precision[:, :, c]
        per_class.append(round(float(p[p > -1].mean()), 6) if (p > -1).any() else None)
    return {"map": float(evaluator.stats[0]), "map50": float(evaluator.stats[1]),
            "ap_per_class": per_class}


def _xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])


class DetectionMetrics(Metrics):
    """Keeps every real image's ground truth and scored detections; COCO mAP at the end.

    Other eval outputs (the loss) are averaged as usual.
    """

    DETECTION_KEYS = ("boxes", "scores", "classes")

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.truth: list[tuple[np.ndarray, np.ndarray]] = []
        self.detections: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def update(self, batch: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
        rest = {k: v for k, v in outputs.items() if k not in self.DETECTION_KEYS}
        super().update(batch, rest)
        for i in np.flatnonzero(batch["mask"] > 0):
            valid = np.asarray(batch["box_valid"][i], bool)
            self.truth.append((batch["boxes"][i][valid], batch["classes"][i][valid]))
            kept = outputs["scores"][i] > 0
            self.detections.append((outputs["boxes"][i][kept], outputs["scores"][i][kept],
                                    outputs["classes"][i][kept]))

    def compute(self) -> dict[str, Any]:
        return {**super().compute(), **coco_map(self.truth, self.detections, self.num_classes)}
