"""The LFW protocol: pairs in folds, the threshold chosen on the other folds; TAR at a
fixed FAR, ROC AUC, and the metrics accumulator that applies them to a split of pairs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from zoo.data.scoring import best_threshold
from zoo.task import Metrics

FAR = 1e-3  # false accept rate at which the true accept rate is reported


def fold_accuracies(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Each fold's accuracy at the threshold that maximises accuracy on the other folds
    (the LFW "unrestricted" protocol: mean and standard deviation of these)."""
    same = np.asarray(same) > 0
    out = []
    for fold in np.unique(folds):
        held = folds == fold
        threshold = best_threshold(scores[~held], same[~held], "accuracy")
        out.append(np.mean((scores[held] >= threshold) == same[held]))
    return np.asarray(out)


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float = FAR) -> float:
    """The largest fraction of matched pairs accepted while at most `far` of the
    mismatched ones are. With fewer than 1/far mismatched pairs this means none."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.asarray(same) > 0, scores)
    return float(tpr[fpr <= far].max())


class PairMetrics(Metrics):
    """Collects the similarity, the truth and the fold of every pair of a split.

    `compute` gives the 10-fold protocol's accuracy (mean and sample standard deviation
    over folds, as LFW reports them), TAR at
    FAR 1e-3 and ROC AUC, plus the accuracy over all pairs at the model's own threshold
    (what `zoo predict` calls same or different), or at the one `choose_threshold` just
    picked on this split.
    """

    def __init__(self) -> None:
        self._scores: list[np.ndarray] = []
        self._same: list[np.ndarray] = []
        self._folds: list[np.ndarray] = []
        self.threshold: float | None = None

    def update(self, batch: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
        keep = np.asarray(batch["mask"]) > 0
        self._scores.append(np.asarray(outputs["similarity"])[keep])
        self._same.append(np.asarray(batch["same"])[keep] > 0)
        self._folds.append(np.asarray(batch["fold"])[keep])
        if self.threshold is None:
            self.threshold = float(np.asarray(outputs["threshold"])[0])

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(similarities, same bool, folds) of every real pair so far."""
        return (np.concatenate(self._scores), np.concatenate(self._same),
                np.concatenate(self._folds))

    def choose_threshold(self) -> float:
        """The similarity threshold that maximises accuracy over all pairs collected."""
        scores, same, _ = self.arrays()
        self.threshold = best_threshold(scores, same, "accuracy", default=self.threshold)
        return self.threshold

    def compute(self) -> dict[str, Any]:
        from sklearn.metrics import roc_auc_score

        scores, same, folds = self.arrays()
        both = same.any() and not same.all()
        per_fold = fold_accuracies(scores, same, folds) if both else np.array([np.nan])
        return {"accuracy": float(per_fold.mean()),
                "accuracy_std": float(per_fold.std(ddof=1 if len(per_fold) > 1 else 0)),
                "tar_at_far_1e-3": tar_at_far(scores, same) if both else float("nan"),
                "auc": float(roc_auc_score(same, scores)) if both else float("nan"),
                "accuracy_at_threshold": float(np.mean((scores >= self.threshold) == same)),
                "threshold": float(self.threshold)}
