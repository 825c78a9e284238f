"""Random stick-figure poses: joint positions, drawn parts and colours, all vectorised.

A figure is built in image coordinates (x right, y down) around its pelvis. An angle
of 0 points down and pi/2 towards the image's right, which is the person's left (they
face the viewer); a limb's angle on the person's right side is mirrored. Lengths are
fractions of the standing height `H`; the head's features sit on a sphere of radius
`rh` turned by a yaw angle, so a turned head hides its far ear.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import hsv_to_rgb

from zoo_tasks.pose.skeleton import COCO_JOINTS

HIDDEN_EAR_DEPTH = -0.25  # an ear this far behind the head's outline (in rh) is hidden
# Drawn parts, back to front: strokes (from, to, radius / H) and dots (at, radius / rh):
# hands and shoes are dots centred on wrists and ankles, so the joints ending a limb
# are as easy to place as the others.
STROKES = {
    "bottom": (("left_hip", "right_hip", .045), ("left_hip", "left_knee", .042),
               ("right_hip", "right_knee", .042), ("left_knee", "left_ankle", .034),
               ("right_knee", "right_ankle", .034)),
    "top": (("neck", "pelvis", .07), ("left_shoulder", "right_shoulder", .035),
            ("left_shoulder", "left_hip", .035), ("right_shoulder", "right_hip", .035),
            ("left_shoulder", "left_elbow", .03), ("right_shoulder", "right_elbow", .03)),
    "skin": (("neck", "head", .03), ("left_elbow", "left_wrist", .026),
             ("right_elbow", "right_wrist", .026)),
}
DOTS = {"shoe": (("left_ankle", .45), ("right_ankle", .45)),
        "skin": (("head", 1.0), ("left_wrist", .4), ("right_wrist", .4)),
        "ear": (("left_ear", .3), ("right_ear", .3)),
        "nose": (("nose", .26),), "eye": (("left_eye", .24), ("right_eye", .24))}
PARTS = ("bottom", "shoe", "top", "skin", "ear", "nose", "eye")


@dataclass(frozen=True)
class Figures:
    """A batch of posed figures; every array has the same leading (batch) shape.

    Attributes:
      points: name -> (..., 2) (x, y): the 17 COCO joints plus "neck", "pelvis", "head".
      height: (...) standing height; head_radius: (...).
      self_hidden: (..., 17) joints hidden by the figure itself (a turned head's far ear).
      colours: part -> (..., 3) RGB in [0, 1].
    """

    points: dict[str, np.ndarray]
    height: np.ndarray
    head_radius: np.ndarray
    self_hidden: np.ndarray
    colours: dict[str, np.ndarray]

    @property
    def joints(self) -> np.ndarray:
        """(..., 17, 2) COCO joints in COCO's order."""
        return np.stack([self.points[name] for name in COCO_JOINTS], -2)

    def take(self, *index) -> Figures:
        """The figures at `index` of the leading axes (numpy indexing)."""
        return Figures({k: v[index] for k, v in self.points.items()}, self.height[index],
                       self.head_radius[index], self.self_hidden[index],
                       {k: v[index] for k, v in self.colours.items()})

    def moved(self, shift: np.ndarray) -> Figures:
        """The figures translated by (..., 2) `shift`."""
        return dataclasses.replace(self, points={k: v + shift for k, v in self.points.items()})

    def extent(self) -> tuple[np.ndarray, np.ndarray]:
        """(..., 2) lower and upper (x, y) corners of each figure's drawing."""
        pts = np.stack(list(self.points.values()), -2)
        head = self.points["head"]
        margin = (0.05 * self.height)[..., None]
        lo = np.minimum(pts.min(-2), head - self.head_radius[..., None]) - margin
        hi = np.maximum(pts.max(-2), head + self.head_radius[..., None]) + margin
        return lo, hi

    def strokes(self, part: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(from, to, radius) of every stroke of `part`."""
        return [(self.points[a], self.points[b], r * self.height)
                for a, b, r in STROKES.get(part, ())]

    def dots(self, part: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """(centre, radius) of every dot of `part`; a hidden joint's dot has radius -1."""
        out = []
        for at, r in DOTS.get(part, ()):
            radius = r * self.head_radius
            if at in COCO_JOINTS:
                radius = np.where(self.self_hidden[..., COCO_JOINTS.index(at)], -1.0, radius)
            out.append((self.points[at], radius))
        return out


def _unit(angle: np.ndarray) -> np.ndarray:
    """(..., 2) unit vectors: angle 0 points down (+y), pi/2 right (+x)."""
    return np.stack([np.sin(angle), np.cos(angle)], -1)


def sample_figures(rng: np.random.Generator, height: np.ndarray) -> Figures:
    """Random poses of standing height `height` (any shape), pelvis at (0, 0)."""
    shape = height.shape

    def u(lo, hi):
        return rng.uniform(lo, hi, shape)

    h = height[..., None]
    lean = u(-0.3, 0.3)
    hip_tilt = 0.3 * lean + u(-0.1, 0.1)
    p = {"pelvis": np.zeros(shape + (2,))}
    p["neck"] = p["pelvis"] + (u(.28, .32)[..., None] * h) * _unit(np.pi + lean)
    across, hip_across = _unit(np.pi / 2 + lean), _unit(np.pi / 2 + hip_tilt)
    shoulder, hip = u(.10, .125)[..., None] * h, u(.065, .085)[..., None] * h
    for side, sign in (("left", 1), ("right", -1)):
        p[f"{side}_shoulder"] = p["neck"] + sign * shoulder * across
        p[f"{side}_hip"] = p["pelvis"] + sign * hip * hip_across
        upper = u(-0.3, 2.8)  # 0: hanging; pi/2: held out sideways; beyond: raised
        fore = upper + u(-2.3, 1.0)
        p[f"{side}_elbow"] = p[f"{side}_shoulder"] + _limb(rng, h, .18, sign * upper + lean)
        p[f"{side}_wrist"] = p[f"{side}_elbow"] + _limb(rng, h, .16, sign * fore + lean)
        thigh = u(-0.25, 0.8)
        shin = np.clip(thigh + u(-1.0, 0.4), -0.6, 1.2)
        p[f"{side}_knee"] = p[f"{side}_hip"] + _limb(rng, h, .25, sign * thigh + hip_tilt,
                                                     shortest=0.7)
        p[f"{side}_ankle"] = p[f"{side}_knee"] + _limb(rng, h, .24, sign * shin + hip_tilt,
                                                       shortest=0.75)
    rh = u(.085, .1) * height
    roll = lean + u(-0.35, 0.35)
    p["head"] = p["neck"] + ((0.035 * height + rh)[..., None]) * _unit(np.pi + roll)
    hidden = np.zeros(shape + (len(COCO_JOINTS),), bool)
    p.update(_face(p["head"], rh, roll, u(-0.8, 0.8), hidden))
    return Figures(p, height, rh, hidden, _colours(rng, shape))


def _limb(rng: np.random.Generator, h: np.ndarray, length: float, angle: np.ndarray,
          shortest: float = 0.65) -> np.ndarray:
    """A limb vector of `length` * H, foreshortened at random down to `shortest` of it
    (the limb pointing partly towards or away from the viewer)."""
    scale = length * rng.uniform(shortest, 1.0, angle.shape)[..., None]
    return scale * h * _unit(angle)


def _face(head: np.ndarray, rh: np.ndarray, roll: np.ndarray, yaw: np.ndarray,
          hidden: np.ndarray) -> dict[str, np.ndarray]:
    """Nose, eyes and ears on a head turned by `yaw` (towards the person's left when
    positive) and rolled by `roll`; marks a hidden far ear in `hidden`."""
    right_axis, down_axis = _unit(np.pi / 2 + roll), _unit(roll)

    def at(azimuth, radius, down):
        u = radius * rh * np.sin(yaw + azimuth)
        return head + u[..., None] * right_axis + (down * rh)[..., None] * down_axis

    points = {"nose": at(0.0, 1.0, 0.3)}
    for side, sign in (("left", 1), ("right", -1)):
        points[f"{side}_eye"] = at(sign * 0.45, 0.92, -0.18)
        points[f"{side}_ear"] = at(sign * np.pi / 2, 1.0, 0.05)
        depth = np.cos(yaw + sign * np.pi / 2)
        hidden[..., COCO_JOINTS.index(f"{side}_ear")] = depth < HIDDEN_EAR_DEPTH
    return points


def _colours(rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Per figure: a top and trousers of random hues, a skin tone, and darker features."""
    def hsv(s, v):
        return hsv_to_rgb(np.stack([rng.random(shape), rng.uniform(*s, shape),
                                    rng.uniform(*v, shape)], -1))

    light, dark = np.array([0.98, 0.84, 0.72]), np.array([0.42, 0.28, 0.2])
    tone = rng.random(shape)[..., None]
    skin = light * (1 - tone) + dark * tone
    eye = np.where(tone < 0.6, np.array([0.05, 0.05, 0.08]), np.array([0.95, 0.95, 0.9]))
    return {"top": hsv((0.5, 1.0), (0.55, 1.0)), "bottom": hsv((0.3, 0.9), (0.3, 0.9)),
            "shoe": hsv((0.0, 0.6), (0.1, 0.5)), "skin": skin, "ear": skin * 0.8,
            "nose": skin * np.array([0.8, 0.55, 0.5]), "eye": eye}
