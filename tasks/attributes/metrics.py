"""Multi-label metrics: average precision per attribute, accuracy and F1 at thresholds
chosen on validation, and the choice of those thresholds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from zoo.data.scoring import Goal, best_threshold
from zoo.task import Metrics


class AttributeMetrics(Metrics):
    """Collects probabilities and 0/1 labels over a split.

    `compute` scores the decisions `probability >= threshold` with the thresholds the
    model carried (as returned by `eval_step`), or with those `choose_thresholds` just
    picked on this split (validation, before the checkpoint).
    """

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        self._probs: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self.thresholds: np.ndarray | None = None
        self._loss = self._count = 0.0

    def update(self, batch: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
        keep = np.asarray(batch["mask"]) > 0
        self._probs.append(np.asarray(outputs["probability"])[keep])
        self._labels.append(np.asarray(batch["attributes"])[keep])
        if self.thresholds is None:
            self.thresholds = np.asarray(outputs["threshold"])[0]
        self._loss += float(outputs["loss"])
        self._count += float(outputs["count"])

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities float (N, A), labels 0/1 (N, A)) of every real row so far."""
        return np.concatenate(self._probs), np.concatenate(self._labels)

    def choose_thresholds(self, goal: Goal) -> np.ndarray:
        """Per attribute, the threshold that maximises `goal` on the rows collected, which
        `compute` then uses too. An attribute without both classes keeps its threshold."""
        probs, labels = self.arrays()
        self.thresholds = np.array([best_threshold(probs[:, i], labels[:, i], goal, default=t)
                                    for i, t in enumerate(self.thresholds)], np.float32)
        return self.thresholds

    def compute(self) -> dict[str, Any]:
        probs, labels = self.arrays()
        per = {name: attribute_scores(probs[:, i], labels[:, i], float(self.thresholds[i]))
               for i, name in enumerate(self.names)}

        def mean(key):
            values = [s[key] for s in per.values() if s[key] is not None]
            return float(np.mean(values)) if values else float("nan")
        return {"mean_ap": mean("ap"), "mean_accuracy": mean("accuracy"), "mean_f1": mean("f1"),
                "loss": self._loss / max(self._count, 1.0), "per_attribute": per}


def attribute_scores(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    """AP, and accuracy and F1 of `probs >= threshold`, for one attribute. AP is None
    without positives, F1 None when there is nothing to find and nothing was called."""
    from sklearn.metrics import average_precision_score

    decided = probs >= threshold
    truth = labels > 0
    tp = int(np.sum(decided & truth))
    wrong = int(np.sum(decided != truth))
    ap = float(average_precision_score(truth, probs)) if truth.any() else None
    return {"ap": ap, "accuracy": float(np.mean(decided == truth)),
            "f1": 2 * tp / (2 * tp + wrong) if 2 * tp + wrong else None,
            "threshold": threshold, "positives": float(np.mean(truth))}
