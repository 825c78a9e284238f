"""Instance segmentation of one image file: a typed result, its JSON and its picture."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from PIL import Image

from zoo.data.coco_eval import rle_encode
from zoo.data.draw import draw_instances
from zoo.data.images import letterboxed_input, unletterbox, unletterbox_mask


@dataclasses.dataclass(frozen=True)
class InstancePrediction:
    """The objects found in one image, in that image's own pixel coordinates.

    Attributes:
      image: the input file.
      labels: class name per object; classes: class index per object.
      scores: (n,) confidence; boxes: (n, 4) x0 y0 x1 y1 pixels.
      masks: (n, H, W) bool, H x W the input image's size.
    """

    image: str
    labels: list[str]
    classes: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray

    def to_json(self) -> dict[str, Any]:
        """JSON-able: each object's label, score, box and COCO RLE mask."""
        return {"image": self.image, "instances": [
            {"label": label, "score": round(float(score), 4),
             "box": [round(float(v), 1) for v in box], "mask": rle}
            for label, score, box, rle in zip(self.labels, self.scores, self.boxes,
                                              rle_encode(self.masks))]}

    def drawing(self, pixels: np.ndarray) -> Image.Image:
        """`pixels` (the image as read) with every object in its own colour and a legend
        of class and score, objects listed left to right."""
        order = np.argsort(self.boxes[:, 0], kind="stable")
        captions = [f"{self.labels[i]}  {self.scores[i]:.2f}" for i in order]
        return draw_instances(pixels, self.masks[order], captions)


def predict_file(path: str, decode: Callable, info: Mapping[str, Any], *,
                 min_score: float) -> tuple[np.ndarray, InstancePrediction]:
    """The image at `path` as read, and the objects `decode` finds in it scoring at least
    `min_score`.

    Args:
      decode: maps a batch of one letterboxed image in [0, 1] to the task's decoded
        outputs (boxes, scores, classes, mask_logits), on the letterboxed square.
    """
    size, _, channels = info["input_shape"]
    pixels, batch, scale, offset = letterboxed_input(path, size, channels,
                                                     info.get("dark_background", False))
    found = {k: np.asarray(v[0]) for k, v in decode(batch).items()}
    keep = np.flatnonzero(found["scores"] >= min_score)
    keep = keep[np.argsort(-found["scores"][keep], kind="stable")]
    height, width = pixels.shape[:2]
    boxes = np.clip(unletterbox(found["boxes"][keep], scale, offset), 0,
                    np.tile([width, height], 2))
    masks = np.array([unletterbox_mask(found["mask_logits"][i].astype(np.float32), scale,
                                       offset, (height, width),
                                       resample=Image.Resampling.BILINEAR) > 0 for i in keep],
                     bool).reshape(len(keep), height, width)
    classes = found["classes"][keep]
    return pixels, InstancePrediction(str(path), [info["classes"][c] for c in classes], classes,
                                      found["scores"][keep], boxes, masks)
