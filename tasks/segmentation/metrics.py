"""Segmentation metrics from a confusion matrix: built on device, summed on the host."""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from zoo.task import Metrics


def confusion_matrix(labels: jax.Array, predictions: jax.Array, weights: jax.Array,
                     num_classes: int) -> jax.Array:
    """(C, C) float32 counts: row = true class, column = predicted class.

    Built as one-hot(labels)^T @ one-hot(predictions), a matmul (fast on any
    accelerator) rather than a scatter. Pixels of weight 0 (ignored labels, padding
    rows) count nothing; labels outside [0, C) one-hot to zeros and so count nothing.
    Counts are exact in float32 up to 2^24 pixels per batch.
    """
    truth = jax.nn.one_hot(labels.reshape(-1), num_classes) * weights.reshape(-1, 1)
    guess = jax.nn.one_hot(predictions.reshape(-1), num_classes)
    return jnp.einsum("pc,pd->cd", truth, guess)


def scores(confusion: np.ndarray) -> dict[str, Any]:
    """`miou`, `iou_per_class` and `pixel_accuracy` of a summed confusion matrix.

    A class's IoU is TP / (TP + FP + FN); classes that appear neither in the labels
    nor in the predictions have no IoU (null) and are left out of the mean.
    """
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    iou = np.where(present, tp / np.maximum(union, 1), np.nan)
    total = confusion.sum()
    return {"miou": float(np.nanmean(iou)) if present.any() else 0.0,
            "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
            "iou_per_class": [round(float(v), 6) if p else None for v, p in zip(iou, present)]}


class SegmentationMetrics(Metrics):
    """Sums the per-batch confusion matrices; other outputs are averaged as usual."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.confusion = np.zeros((num_classes, num_classes), np.int64)

    def update(self, batch: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
        outputs = dict(outputs)
        self.confusion += np.rint(outputs.pop("confusion")).astype(np.int64)
        super().update(batch, outputs)

    def compute(self) -> dict[str, Any]:
        return {**super().compute(), **scores(self.confusion)}
