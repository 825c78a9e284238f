"""What pose estimation returns for one image, and its picture.

`Poses` is the typed result (people, their joints in the input image's pixels, scores)
with `to_json()`; `draw` renders it. The CLI's `zoo predict pose` only formats these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from zoo.data.draw import draw_skeletons
from zoo_tasks.pose.skeleton import Skeleton


@dataclass(frozen=True)
class Person:
    """One person: (K, 2) joint x, y in the input image's pixels, the person's score and
    each joint's heatmap score (0 where the joint kept its regressed position)."""

    keypoints: np.ndarray
    score: float
    joint_scores: np.ndarray


@dataclass(frozen=True)
class Poses:
    """Everyone found in one image, best first."""

    image: str  # where the image came from (a path, or a caller's name for an array)
    skeleton: Skeleton
    people: tuple[Person, ...]

    def to_json(self) -> dict[str, Any]:
        """{"image", "people": [{"score", "keypoints": {joint: [x, y, joint score]}}]}."""
        return {"image": self.image, "people": [
            {"score": round(p.score, 4),
             "keypoints": {name: [round(float(x), 1), round(float(y), 1), round(float(s), 3)]
                           for name, (x, y), s in zip(self.skeleton.names, p.keypoints,
                                                      p.joint_scores)}}
            for p in self.people]}

    def draw(self, image: np.ndarray) -> Image.Image:
        """`image` (H, W, C uint8, the one estimated) with every skeleton and its score."""
        limbs = self.skeleton.limbs
        return draw_skeletons(image, [p.keypoints for p in self.people], limbs,
                              [self.skeleton.limb_side(l) for l in limbs],
                              [f"{p.score:.2f}" for p in self.people])
