"""Yes/no decisions from scores: the threshold that maximises accuracy or F1.

Shared by tasks that call something present or absent from a score (an attribute's
probability, two faces' similarity), on the host, over a whole split.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Goal = Literal["f1", "accuracy"]


def best_threshold(scores: np.ndarray, labels: np.ndarray, goal: Goal = "accuracy", *,
                   default: float = 0.5) -> float:
    """The threshold t that maximises `goal` for the decisions `scores >= t` against 0/1
    `labels`.

    t lies halfway between the lowest score called positive and the next lower one, so
    that it generalises instead of sitting on a score seen here (at the ends: just above
    the highest score, or the lowest); `default` when the labels hold only one class.
    """
    from sklearn.metrics import roc_curve

    truth = np.asarray(labels) > 0
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if positives == 0 or negatives == 0:
        return default
    fpr, tpr, cuts = roc_curve(truth, scores, drop_intermediate=False)
    tp, fp = tpr * positives, fpr * negatives
    if goal == "f1":
        score = 2 * tp / np.maximum(2 * tp + fp + (positives - tp), 1)
    else:
        score = (tp + negatives - fp) / (positives + negatives)
    best = int(np.argmax(score))
    if best == 0:  # nothing called positive: just above the highest score
        return float(np.nextafter(np.float32(cuts[1]), np.float32(np.inf)))
    if best == len(cuts) - 1:  # everything called positive: the lowest score
        return float(cuts[best])
    return float((cuts[best] + cuts[best + 1]) / 2)
