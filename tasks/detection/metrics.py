"""COCO mAP with pycocotools: detections collected on the host, scored once per split."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from zoo.data.coco_eval import coco_ap
from zoo.task import Metrics


def coco_map(truth: Sequence[tuple[np.ndarray, np.ndarray]],
             detections: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
             num_classes: int) -> dict[str, Any]:
    """COCO box mAP@[.5:.95], mAP@0.5 and per-class AP (`zoo.data.coco_eval`).

    Args:
      truth: per image, (boxes (n, 4) x0 y0 x1 y1, classes (n,)).
      detections: per image, (boxes (k, 4), scores (k,), classes (k,)).

    Returns:
      {"map", "map50", "ap_per_class"}; a class without ground truth has AP None.
    """
    scores = coco_ap([{"boxes": b, "classes": c} for b, c in truth],
                     [{"boxes": b, "scores": s, "classes": c} for b, s, c in detections],
                     num_classes, "bbox")
    return {"map": scores["ap"], "map50": scores["ap50"], "ap_per_class": scores["ap_per_class"]}


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
