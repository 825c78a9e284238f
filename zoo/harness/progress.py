"""Progress on the terminal: a rich bar with throughput on a TTY, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def _fmt(values: Mapping[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in values.items())


class EpochProgress:
    """Reports steps within an epoch, and one summary line per epoch."""

    def __init__(self, total_epochs: int, *, quiet: bool = False):
        self.total_epochs = total_epochs
        self.quiet = quiet
        self.console = Console(stderr=True)
        self.interactive = sys.stderr.isatty() and not quiet
        self._bar: Progress | None = None
        self._task = None

    def log(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def start_epoch(self, epoch: int, steps: int, done: int = 0) -> None:
        self._t0, self._examples, self._status = time.perf_counter(), 0, ""
        if self.interactive:
            self._bar = Progress(TextColumn(f"epoch {epoch + 1}/{self.total_epochs}"),
                                 BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("{task.fields[status]}"),
                                 console=self.console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task("train", total=steps, completed=done, status="")

    def advance(self, step_in_epoch: int, examples: int, values: Mapping[str, float] | None) -> None:
        """Called every step; `values` are scalars freshly fetched at the log cadence, else None."""
        self._examples = examples
        if self._bar is not None:
            if values:
                self._status = _fmt(values)
            self._bar.update(self._task, completed=step_in_epoch,
                             status=f"{self.throughput():,.0f} ex/s {self._status}")

    def throughput(self) -> float:
        return self._examples / max(time.perf_counter() - self._t0, 1e-9)

    def stop_bar(self) -> None:
        """Takes the live bar off the terminal (also when an epoch ends in an error,
        so the error is not drawn over)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def end_epoch(self, epoch: int, values: Mapping[str, float]) -> None:
        self.stop_bar()
        self.log(f"epoch {epoch + 1}/{self.total_epochs} {_fmt(values)} "
                 f"({self.throughput():,.0f} ex/s, {time.perf_counter() - self._t0:.1f}s)")
