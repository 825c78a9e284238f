"""A skeleton: named joints, the limbs that join them, their OKS sigmas, left and right.

COCO's 17-joint person is the default; a COCO keypoints file brings its own names and
limbs (its category's `keypoints` and `skeleton`), and the sigmas are then configurable.
Left/right pairs are found by name ("left_eye" mirrors "right_eye"), which is what a
horizontal flip has to swap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Side = Literal["left", "right", "centre"]


@dataclass(frozen=True)
class Skeleton:
    """Joint names, limbs as 0-based joint index pairs, and one OKS sigma per joint.

    A sigma is the spread of human annotators' clicks for that joint relative to the
    person's scale (COCO: 0.025 for an eye, 0.107 for a hip); object keypoint
    similarity is exp(-d^2 / (2 area (2 sigma)^2)) averaged over labelled joints.
    """

    names: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]

    def __post_init__(self):
        if len(self.sigmas) != len(self.names):
            raise ValueError(f"{len(self.sigmas)} sigmas for {len(self.names)} joints")

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def sides(self) -> tuple[Side, ...]:
        """Each joint's side of the body, read from its name."""
        return tuple(_side(name) for name in self.names)

    @property
    def flip_index(self) -> tuple[int, ...]:
        """Joint i of a mirrored person is joint flip_index[i] of the original."""
        index = {name.lower(): i for i, name in enumerate(self.names)}
        return tuple(index.get(_mirror(name), i) for i, name in enumerate(self.names))

    def limb_side(self, limb: tuple[int, int]) -> Side:
        """Left if either end is left and neither is right (nose-left_eye is left)."""
        sides = {self.sides[j] for j in limb}
        for side in ("left", "right"):
            if side in sides and ({"left", "right"} - {side}).isdisjoint(sides):
                return side
        return "centre"

    def to_info(self) -> dict[str, Any]:
        """JSON-able form for `Dataset.info` (so predict and eval need no data)."""
        return {"keypoints": list(self.names), "skeleton": [list(l) for l in self.limbs],
                "sigmas": list(self.sigmas)}

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> Skeleton:
        return cls(tuple(info["keypoints"]), tuple(tuple(l) for l in info["skeleton"]),
                   tuple(float(s) for s in info["sigmas"]))


def _side(name: str) -> Side:
    words = set(re.split(r"[^a-z]+", name.lower()))
    if "left" in words:
        return "left"
    if "right" in words:
        return "right"
    return "centre"


def _mirror(name: str) -> str:
    """The lower-cased name of the joint on the other side ("Left hand" -> "right hand")."""
    return re.sub(r"left|right", lambda m: {"left": "right", "right": "left"}[m.group()],
                  name.lower())


COCO_JOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear",
               "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
               "left_wrist", "right_wrist", "left_hip", "right_hip",
               "left_knee", "right_knee", "left_ankle", "right_ankle")
# COCO's person skeleton as its annotation files give it (1-based joint numbers).
COCO_LIMBS_1 = ((16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7),
                (6, 8), (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5),
                (4, 6), (5, 7))
# pycocotools' COCOeval.Params.kpt_oks_sigmas for the 17 person joints.
COCO_SIGMAS = (.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062,
               .107, .107, .087, .087, .089, .089)
COCO_PERSON = Skeleton(COCO_JOINTS, tuple((a - 1, b - 1) for a, b in COCO_LIMBS_1), COCO_SIGMAS)

