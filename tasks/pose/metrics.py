"""Keypoint AP with pycocotools: poses collected on the host, scored once per split."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from zoo.data import coco
from zoo.task import Metrics

# COCOeval's keypoint summary: AP@[.5:.95], AP50, AP75, then medium and large
# objects (areas 32^2-96^2 and above), then the same five for recall.
STATS = {"ap": 0, "ap50": 1, "ap75": 2, "ar": 5}


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
        return {name: 0.0 for name in STATS}  # nothing to match: COCOeval would fail
    evaluator = coco.evaluate(images, annotations, [{"id": 1, "name": "person"}], results,
                              "keypoints", {"kpt_oks_sigmas": np.asarray(sigmas, np.float64)})
    return {name: max(float(evaluator.stats[i]), 0.0) for name, i in STATS.items()}


class PoseMetrics(Metrics):
    """Keeps every real image's people and decoded poses; keypoint AP at the end.

    Other eval outputs (the loss) are averaged as usual.
    """

    POSE_KEYS = ("keypoints", "scores", "joint_scores")

    def __init__(self, sigmas: Sequence[float]):
        super().__init__()
        self.sigmas = tuple(sigmas)
        self.truth: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.poses: list[tuple[np.ndarray, np.ndarray]] = []

    def update(self, batch: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
        super().update(batch, {k: v for k, v in outputs.items() if k not in self.POSE_KEYS})
        for i in np.flatnonzero(batch["mask"] > 0):
            real = np.asarray(batch["person_valid"][i], bool)
            self.truth.append((batch["keypoints"][i][real], batch["boxes"][i][real],
                               batch["area"][i][real]))
            found = outputs["scores"][i] > 0
            self.poses.append((outputs["keypoints"][i][found], outputs["scores"][i][found]))

    def compute(self) -> dict[str, Any]:
        return {**super().compute(), **keypoint_ap(self.truth, self.poses, self.sigmas)}
