"""What a run leaves in its workdir besides checkpoints: history, curves, metrics, TB."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.io.files import jsonable


def write_history(workdir: Path, history: Sequence[Mapping[str, Any]]) -> None:
    """history.jsonl (one line per epoch), rewritten from the full history."""
    tmp = workdir / "history.jsonl.tmp"
    tmp.write_text("".join(json.dumps(row, default=jsonable) + "\n" for row in history))
    os.replace(tmp, workdir / "history.jsonl")


class Curves:
    """curves.png, redrawn from the history at most once a minute while training and
    once at the end: a matplotlib drawing costs 1-2 CPU-seconds, more than a small
    task's whole epoch."""

    def __init__(self, path: Path, every_seconds: float = 60.0):
        self.path, self.every = path, every_seconds
        self._drawn = time.monotonic()

    def update(self, history: Sequence[Mapping[str, Any]], *, final: bool) -> None:
        if history and (final or time.monotonic() - self._drawn >= self.every):
            plot_curves(history, self.path)
            self._drawn = time.monotonic()


def plot_curves(history: Sequence[Mapping[str, Any]], path: Path, *, columns: int = 4) -> None:
    """One panel per metric name, train and val curves together, in a grid of at most
    `columns` panels a row; points are marked while few (one epoch is one dot, not an
    empty axis). Per-class lists are left to history.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({k.split("/", 1)[1] for row in history for k, v in row.items()
                    if "/" in k and _is_number(v)})
    if not names:
        return
    cols = min(columns, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    epochs = [row["epoch"] for row in history]
    marker = "o" if len(history) <= 30 else None
    for ax, name in zip(axes.flat, names):
        for split in ("train", "val"):
            key = f"{split}/{name}"
            if any(_is_number(row.get(key)) for row in history):
                ax.plot(epochs, [row[key] if _is_number(row.get(key)) else float("nan")
                                 for row in history], label=split, marker=marker, markersize=4)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        if len(set(epochs)) < 3:  # matplotlib would label one epoch 0.96 ... 1.04
            ax.set_xticks(sorted(set(epochs)))
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """A nested config as {"a.b": value}, values as the hparams plugin takes them."""
    out: dict[str, bool | int | float | str] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


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

    def hparams(self, step: int, config: Any, metrics: Mapping[str, float]) -> None:
        """The run's config (flattened: `optimizer.lr`...) and its final metrics, for
        TensorBoard's HPARAMS tab; the metrics are also written as scalars at `step`.

        Written into the run's own event file (tensorboardX's `add_hparams` would open a
        sub-run), so TensorBoard shows one run per workdir.
        """
        if self._writer is None:
            return
        from tensorboardX.summary import hparams

        for summary in hparams(_flat(dataclasses.asdict(config)), dict(metrics)):
            self._writer.file_writer.add_summary(summary)
        self.scalars(step, metrics)

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
