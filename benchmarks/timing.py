"""Timing helpers shared by the benchmark peers: warm-up, windows, medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Throughput:
    """Examples per second over several timed windows, with compile time kept apart."""

    peer: str
    model: str
    batch_size: int
    windows: list[float] = field(default_factory=list)  # examples/s per window
    compile_seconds: float = float("nan")
    note: str = ""
    flops_per_example: float | None = None  # XLA's count of the step, where the peer knows it
    device: str | None = None  # the platform it trained on; None: JAX's default backend

    @property
    def median(self) -> float:
        return statistics.median(self.windows) if self.windows else float("nan")


def measure(peer: str, model: str, batch_size: int, run_steps: Callable[[int], None], *,
            compile_seconds: float, steps_per_window: int, windows: int) -> Throughput:
    """Times `run_steps(n)` (which must block until done) over `windows` windows.

    One untimed window runs first so caches, allocators and thread pools are warm.
    """
    run_steps(steps_per_window)
    result = Throughput(peer, model, batch_size, compile_seconds=compile_seconds)
    for _ in range(windows):
        t0 = time.perf_counter()
        run_steps(steps_per_window)
        result.windows.append(steps_per_window * batch_size / (time.perf_counter() - t0))
    return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]
