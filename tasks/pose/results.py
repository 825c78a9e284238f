"""What pose estimation returns for one image, and its picture.

`Poses` is the typed result (people, their joints in the input image's pixels, scores):
`to_json()` for programs, `summary()` for a person, and the skeleton drawing that `zoo
predict pose --out` writes. `to_poses` maps one image's decoded outputs back onto it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from zoo.data.draw import draw_skeletons
from zoo.predictions import FileOption, Result
from zoo_tasks.pose.skeleton import Skeleton


@dataclass(frozen=True)
class Person:
    """One person: (K, 2) joint x, y in the input image's pixels, the person's score and
    each joint's heatmap score (0 where the joint kept its regressed position)."""

    keypoints: np.ndarray
    score: float
    joint_scores: np.ndarray


@dataclass(frozen=True)
class Poses(Result):
    """Everyone found in one image, best first."""

    skeleton: Skeleton
    people: tuple[Person, ...]

    files = {"out": FileOption("PNG with the skeletons drawn (a directory for several images)",
                               "-skeletons.png")}

    def to_json(self) -> dict[str, Any]:
        """{"people": [{"score", "keypoints": {joint: [x, y, joint score]}}]}."""
        return {"people": [
            {"score": round(p.score, 4),
             "keypoints": {name: [round(float(x), 1), round(float(y), 1), round(float(s), 3)]
                           for name, (x, y), s in zip(self.skeleton.names, p.keypoints,
                                                      p.joint_scores)}}
            for p in self.people]}

    def summary(self) -> str:
        if not self.people:
            return "nobody found"
        count = f"{len(self.people)} {'person' if len(self.people) == 1 else 'people'}"
        return f"{count} (scores {', '.join(f'{p.score:.2f}' for p in self.people)})"

    def render(self, option: str, image: np.ndarray | None) -> Image.Image:
        """`image` (H, W, C uint8, the one estimated) with every skeleton and its score."""
        limbs = self.skeleton.limbs
        return draw_skeletons(image, [p.keypoints for p in self.people], limbs,
                              [self.skeleton.limb_side(l) for l in limbs],
                              [f"{p.score:.2f}" for p in self.people])


def to_poses(found: Mapping[str, np.ndarray], scale: np.ndarray, offset: np.ndarray,
             skeleton: Skeleton, min_score: float) -> Poses:
    """One image's decoded people (keypoints, scores, joint_scores on the letterboxed
    square) scoring at least `min_score`, best first, in the image's own pixels."""
    people = [Person((joints - offset) / scale, float(score), joint_scores)
              for joints, score, joint_scores in
              zip(found["keypoints"], found["scores"], found["joint_scores"])
              if score >= min_score]
    people.sort(key=lambda person: -person.score)  # decoded in centre-peak order
    return Poses(skeleton, tuple(people))
