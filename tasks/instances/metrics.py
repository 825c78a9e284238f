"""COCO mask AP and box AP (pycocotools) of every image's objects, scored once per split."""

from collections.abc import Mapping
from typing import Any

import numpy as np

from zoo.data.coco_eval import coco_ap
from zoo.task import Metrics

OBJECT_KEYS = ("boxes", "scores", "classes", "masks")


def ground_truth(batch: Mapping[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """Row `i`'s real objects: boxes, classes and (n, H, W) bool masks from its id map."""
    valid = np.flatnonzero(batch["box_valid"][i])
    return {"boxes": batch["boxes"][i][valid], "classes": batch["classes"][i][valid],
            "masks": batch["instances"][i][None] == (valid + 1)[:, None, None]}


class InstanceMetrics(Metrics):
    """Keeps every real image's objects and predictions; COCO AP of masks ("segm") and of
    boxes ("bbox") at the end. Other eval outputs (the losses) are averaged as usual."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.truth: list[dict[str, np.ndarray]] = []
        self.found: list[dict[str, np.ndarray]] = []

    def update(self, batch: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
        super().update(batch, {k: v for k, v in outputs.items() if k not in OBJECT_KEYS})
        for i in np.flatnonzero(batch["mask"] > 0):
            self.truth.append(ground_truth(batch, i))
            kept = outputs["scores"][i] > 0
            self.found.append({k: np.asarray(outputs[k][i][kept]) for k in OBJECT_KEYS})

    def compute(self) -> dict[str, Any]:
        masks = coco_ap(self.truth, self.found, self.num_classes, "segm")
        boxes = coco_ap(self.truth, self.found, self.num_classes, "bbox")
        return {**super().compute(), "mask_ap": masks["ap"], "mask_ap50": masks["ap50"],
                "box_ap": boxes["ap"], "box_ap50": boxes["ap50"],
                "mask_ap_per_class": masks["ap_per_class"],
                "box_ap_per_class": boxes["ap_per_class"]}
