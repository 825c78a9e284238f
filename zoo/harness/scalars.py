"""Train-step scalars on their way to the host, and the NaN/Inf policy applied there.

The compiled step flags a non-finite update (`steps.commit_if_finite`; under `skip` it
also keeps the old state); the flags come to the host with the other scalars, only at
the log cadence, before a checkpoint and at epoch ends, so the policy costs no per-step
sync. `raise`
stops at the first flagged step; `skip` drops flagged steps and stops after
`max_bad_steps` of them in a row.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import jax

from zoo.harness.steps import FINITE


class NonFiniteStep(Exception):
    """A verdict to stop at `step`: of the NaN/Inf policy, or of `jax_debug_nans`."""

    def __init__(self, step: int, what: str):
        super().__init__(f"step {step}: {what}")
        self.step = step


@dataclasses.dataclass
class EpochSums:
    """The current epoch's scalars so far: JSON-able, saved with mid-epoch checkpoints."""

    sums: dict[str, float] = dataclasses.field(default_factory=dict)
    steps: int = 0  # finite steps summed
    skipped: int = 0  # non-finite steps dropped
    streak: int = 0  # non-finite steps in a row, up to the newest one


class ScalarLog:
    """Collects per-step scalars on device; `fetch` brings them over and applies the policy."""

    def __init__(self, on_nan: Literal["raise", "skip"], max_bad_steps: int,
                 saved: dict[str, Any] | None = None):
        self.on_nan, self.max_bad_steps = on_nan, max_bad_steps
        self.epoch = EpochSums(**(saved or {}))
        self._pending: list[tuple[int, dict]] = []

    def add(self, step: int, scalars: dict) -> None:
        """Keeps step `step`'s device scalars (no transfer yet)."""
        self._pending.append((step, scalars))

    def fetch(self) -> dict[str, float] | None:
        """Moves pending scalars to the host in one transfer and folds them in.

        Returns:
          The newest finite step's scalars, or None if there were none.

        Raises:
          NonFiniteStep: where the policy says to stop.
        """
        host = jax.device_get([scalars for _, scalars in self._pending])
        steps = [step for step, _ in self._pending]
        self._pending.clear()
        newest = None
        for step, values in zip(steps, host):
            if bool(values.pop(FINITE)):
                self.epoch.streak = 0
                self.epoch.steps += 1
                for key, value in values.items():
                    self.epoch.sums[key] = self.epoch.sums.get(key, 0.0) + float(value)
                newest = values
                continue
            self.epoch.streak += 1
            self.epoch.skipped += 1
            if self.on_nan == "raise":
                raise NonFiniteStep(step, "the loss or update is not finite (NaN or Inf)")
            if self.epoch.streak >= self.max_bad_steps:
                raise NonFiniteStep(step, f"{self.epoch.streak} non-finite steps in a row "
                                          f"(train.max_bad_steps)")
        return None if newest is None else {k: float(v) for k, v in newest.items()}

    def end_epoch(self) -> tuple[dict[str, float], int]:
        """The epoch's per-key means over finite steps and its skipped count; resets."""
        self.fetch()
        sums, n = self.epoch.sums, self.epoch.steps
        means = {k: v / n for k, v in sums.items()} if n else {}
        skipped = self.epoch.skipped
        self.epoch = EpochSums(streak=self.epoch.streak)
        return means, skipped

    def state(self) -> dict[str, Any]:
        """The epoch so far, as JSON for a mid-epoch checkpoint (call after `fetch`)."""
        assert not self._pending, "fetch before saving"
        return dataclasses.asdict(self.epoch)

