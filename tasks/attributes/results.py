"""What face attributes returns for one image: every attribute's probability and the
yes/no the model's saved threshold gives it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.predictions import Result


@dataclass(frozen=True)
class Attributes(Result):
    """Every attribute of one image, in the model's order.

    Attributes:
      names: the attribute names.
      probabilities: (attributes,) sigmoid of the logits.
      thresholds: (attributes,) the per-attribute thresholds chosen on validation.
      sort: list by probability, most likely first (else in the model's order).
    """

    names: tuple[str, ...]
    probabilities: np.ndarray
    thresholds: np.ndarray
    sort: bool = False

    @property
    def present(self) -> np.ndarray:
        """(attributes,) bool: the probability reaches the attribute's threshold."""
        return self.probabilities >= self.thresholds

    def _order(self) -> list[int]:
        if self.sort:
            return [int(i) for i in np.argsort(-self.probabilities, kind="stable")]
        return list(range(len(self.names)))

    def to_json(self) -> dict[str, Any]:
        return {"attributes": [
            {"name": self.names[i], "probability": round(float(self.probabilities[i]), 4),
             "threshold": float(self.thresholds[i]), "present": bool(self.present[i])}
            for i in self._order()]}

    def summary(self) -> str:
        present = [self.names[i] for i in self._order() if self.present[i]]
        return (", ".join(present) or "none") + f" ({len(present)} of {len(self.names)} present)"

    def line(self, source: str | None, several: bool) -> str:
        """The deck's listing: one line per attribute, its probability, yes or no."""
        del several
        width = max(map(len, self.names))
        lines = [f"  {self.names[i]:<{width}}  {self.probabilities[i]:.3f}  "
                 f"{'yes' if self.present[i] else 'no ':3}  (threshold {self.thresholds[i]:.2f})"
                 for i in self._order()]
        return "\n".join([f"{source or 'image'}:", *lines])
