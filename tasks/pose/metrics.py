"""Keypoint AP with pycocotools: poses collected on the host, scored once per split."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from zoo.data.coco_eval import keypoint_ap
from zoo.task import Metrics


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
