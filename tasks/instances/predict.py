"""Instance segmentation of one image: a typed result, its JSON and its picture."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image

from zoo.data.coco_eval import rle_encode
from zoo.data.draw import draw_instances
from zoo.data.images import unletterbox, unletterbox_mask
from zoo.predictions import FileOption, Result


@dataclasses.dataclass(frozen=True)
class InstancePrediction(Result):
    """The objects found in one image, in that image's own pixel coordinates, best first.

    Attributes:
      labels: class name per object; classes: class index per object.
      scores: (n,) confidence; boxes: (n, 4) x0 y0 x1 y1 pixels.
      masks: (n, H, W) bool, H x W the input image's size.
    """

    labels: list[str]
    classes: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray

    files = {"out": FileOption("PNG with every object in its own colour and a legend of "
                               "class and score (a directory for several images)",
                               "-instances.png")}

    def to_json(self) -> dict[str, Any]:
        """JSON-able: each object's label, score, box and COCO RLE mask."""
        return {"instances": [
            {"label": label, "score": round(float(score), 4),
             "box": [round(float(v), 1) for v in box], "mask": rle}
            for label, score, box, rle in zip(self.labels, self.scores, self.boxes,
                                              rle_encode(self.masks))]}

    def summary(self) -> str:
        if not len(self.scores):
            return "nothing found"
        return ", ".join(f"{label} ({s:.2f}, {int(m.sum())} px) at "
                         f"[{', '.join(f'{v:.0f}' for v in b)}]"
                         for label, s, b, m in zip(self.labels, self.scores, self.boxes,
                                                   self.masks))

    def render(self, option: str, image: np.ndarray | None) -> Image.Image:
        """`image` (the input as read) with every object in its own colour and a legend
        of class and score, objects listed left to right."""
        order = np.argsort(self.boxes[:, 0], kind="stable")
        captions = [f"{self.labels[i]}  {self.scores[i]:.2f}" for i in order]
        return draw_instances(image, self.masks[order], captions)


def to_prediction(found: Mapping[str, np.ndarray], context: Any, classes: list[str], *,
                  min_score: float) -> InstancePrediction:
    """One image's decoded outputs (boxes, scores, classes, mask_logits on the letterboxed
    square) as objects scoring at least `min_score`, mapped back onto the image.

    Args:
      context: ((height, width) of the image, letterbox scale, letterbox offset).
    """
    (height, width), scale, offset = context
    keep = np.flatnonzero(found["scores"] >= min_score)
    keep = keep[np.argsort(-found["scores"][keep], kind="stable")]
    boxes = np.clip(unletterbox(found["boxes"][keep], scale, offset), 0,
                    np.tile([width, height], 2))
    masks = np.array([unletterbox_mask(found["mask_logits"][i].astype(np.float32), scale,
                                       offset, (height, width),
                                       resample=Image.Resampling.BILINEAR) > 0 for i in keep],
                     bool).reshape(len(keep), height, width)
    ids = found["classes"][keep]
    return InstancePrediction([classes[c] for c in ids], ids, found["scores"][keep], boxes, masks)
