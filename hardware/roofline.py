"""What a compiled step costs, from XLA's own analysis, and how fast a chip could run it.

The roofline model: a step needs at least FLOPs / peak FLOP/s of compute and bytes /
bandwidth of memory traffic, so it takes at least the larger of the two; which one is
larger says whether the step is compute- or memory-bound on that chip. Its arithmetic
intensity (FLOPs per byte) against the chip's ridge point (peak / bandwidth) says the
same thing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from zoo_hardware.catalogue import DeviceSpec


@dataclasses.dataclass(frozen=True)
class StepCost:
    """XLA's counts for one call of a compiled program (all devices' work, on one device)."""

    flops: float
    bytes_accessed: float
    transcendentals: float

    @property
    def intensity(self) -> float:
        """FLOPs per byte of memory traffic."""
        return self.flops / max(self.bytes_accessed, 1.0)


def step_cost(compiled: Any) -> StepCost:
    """The cost analysis of a `jax.jit(...).lower(...).compile()` result."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jax: one dict per program
        analysis = analysis[0]
    return StepCost(flops=float(analysis.get("flops", 0.0)),
                    bytes_accessed=float(analysis.get("bytes accessed", 0.0)),
                    transcendentals=float(analysis.get("transcendentals", 0.0)))


def step_memory(compiled: Any) -> dict[str, int]:
    """Bytes of arguments, outputs and temporaries (activations kept for the backward
    pass, workspace) that XLA planned for a compiled program."""
    stats = compiled.memory_analysis()
    return {"arguments": int(stats.argument_size_in_bytes),
            "outputs": int(stats.output_size_in_bytes),
            "temporaries": int(stats.temp_size_in_bytes),
            "aliased": int(stats.alias_size_in_bytes)}


@dataclasses.dataclass(frozen=True)
class Bound:
    """The roofline-bound time of one step on one chip."""

    device: str
    seconds: float
    compute_seconds: float
    memory_seconds: float

    @property
    def limit(self) -> str:
        return "compute" if self.compute_seconds >= self.memory_seconds else "memory"


def bound(cost: StepCost, spec: DeviceSpec, dtype: str) -> Bound | None:
    """The least time `spec` needs for `cost` in `dtype`; None if the chip lacks `dtype`."""
    peak = spec.peak(dtype)
    if not peak:
        return None
    compute, memory = cost.flops / peak, cost.bytes_accessed / spec.bandwidth
    return Bound(spec.name, max(compute, memory), compute, memory)
