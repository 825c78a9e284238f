"""What a run leaves in its workdir besides checkpoints: history, curves, metrics, TB."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.io.files import jsonable


def write_history(workdir: Path, history: Sequence[Mapping[str, Any]]) -> None:
    """history.jsonl (one line per epoch) and curves.png, rewritten from the full history."""
    tmp = workdir / "history.jsonl.tmp"
    tmp.write_text("".join(json.dumps(row, default=jsonable) + "\n" for row in history))
    os.replace(tmp, workdir / "history.jsonl")
    if history:
        plot_curves(history, workdir / "curves.png")


def plot_curves(history: Sequence[Mapping[str, Any]], path: Path) -> None:
    """One panel per metric name, train and val curves together."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({k.split("/", 1)[1] for row in history for k in row if "/" in k})
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3), squeeze=False)
    epochs = [row["epoch"] for row in history]
    for ax, name in zip(axes[0], names):
        for split in ("train", "val"):
            key = f"{split}/{name}"
            if any(key in row for row in history):
                ax.plot(epochs, [row.get(key, float("nan")) for row in history], label=split)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)


class TensorBoard:
    """Scalars to TensorBoard event files under `workdir/tb` (tensorboardX, no TF).

    A disabled writer (every process but the first of a multi-process run) does nothing.
    """

    def __init__(self, workdir: Path, *, enabled: bool = True):
        from tensorboardX import SummaryWriter

        self._writer = SummaryWriter(str(workdir / "tb")) if enabled else None

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        if self._writer is None:
            return
        for key, value in values.items():
            self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        """Flushes and closes the event files; on a full disk, drops what is pending.

        After a failed flush tensorboardX would retry at exit and its writer thread would
        die on a closed queue, each printing a traceback after zoo's one-line error; so
        its writers are marked closed and their threads stopped here.
        """
        if self._writer is None:  # not process 0
            return
        try:
            self._writer.close()
        except OSError:
            for file_writer in self._writer.all_writers.values():
                events = file_writer.event_writer
                events._closed = True
                events._worker.stop()
