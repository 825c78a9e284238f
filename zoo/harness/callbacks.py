"""Hooks into `fit` for code that trains from Python: your own logging, early stopping.

    class PrintLoss(zoo.Callback):
        every_steps = 10  # this step's scalars every 10 steps
        def on_step(self, step, scalars):
            print(step, scalars["loss"])
        def on_epoch(self, epoch, row):
            return row["val/accuracy"] > 0.99  # True stops training after this epoch

The compiled steps leave their scalars on the device; the loop moves them to the host
only at its own log cadence, so a callback that asks for none (`every_steps = 0`) adds
no host synchronisation to the hot loop, and one that does adds one per `every_steps`.
"""

from __future__ import annotations

from collections.abc import Mapping


class Callback:
    """Subclass and override what you need; `fit(..., callbacks=[...])` calls it on
    every process of a multi-process run."""

    every_steps: int = 0  # call `on_step` every this many steps (0: never)

    def on_step(self, step: int, scalars: Mapping[str, float]) -> None:
        """The scalars `loss` returned for global step `step` (1-based), as floats."""

    def on_epoch(self, epoch: int, row: Mapping[str, float]) -> bool | None:
        """After epoch `epoch` (1-based) is validated: its history row ("train/loss",
        "val/<metric>"..., "seconds"). Return True to stop training here; the run then
        tests its best checkpoint as usual."""
        return None
