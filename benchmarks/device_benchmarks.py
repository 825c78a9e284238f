"""The accelerator half of the benchmarks, in one call under a time budget.

Training throughput of LeNet and ResNet-14 (and ResNet-50 where the classification task
has it) in bfloat16 and float32 against PyTorch CUDA eager and `torch.compile`, and the
OCR task's CRNN, each peer in a fresh process (`train_throughput`); then
`results-gpu.md`: every row with its dtype and device, the zoo rows' achieved FLOP/s
as a fraction of the chip's datasheet peak (`zoo_hardware.catalogue`), and the chip's
matmul rate measured here beside it. benchmarks/device_check.sh runs it.

    python -m benchmarks.device_benchmarks [--budget 330] [--out benchmarks/results-gpu.md]
    python -m benchmarks.device_benchmarks --dry-run      # the plan, nothing run

Runs go in order of importance; once the budget is spent the rest are listed as
skipped, so the report is always written.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from typing import NamedTuple

from benchmarks import report, train_throughput, workloads

RESNET50 = "resnet50"  # issue 17's ImageNet-class ResNet, once the classification task has it


class Run(NamedTuple):
    model: str
    dtype: str
    peer: str
    task: str = "classification"


def plan() -> list[Run]:
    """Every run, most important first."""
    runs = []
    for dtype in ("bfloat16", "float32"):
        runs += [Run(model, dtype, peer) for model in ("lenet", "resnet") for peer in ("zoo", "torch")]
    runs += [Run("crnn", dtype, "zoo", "ocr") for dtype in ("bfloat16", "float32")]
    runs += [Run(RESNET50, dtype, peer) for dtype in ("bfloat16", "float32") for peer in ("zoo", "torch")]
    runs += [Run(model, "bfloat16", peer) for model in ("lenet", "resnet")
             for peer in ("bare", "torch-compile")]
    runs += [Run("crnn", "bfloat16", "bare", "ocr")]
    return runs


def why_not(run: Run) -> str | None:
    """Why `run` cannot happen in this checkout, or None."""
    if run.model not in workloads.MODELS:
        return f"no {run.model} workload in this checkout (benchmarks/workloads.py)"
    if not train_throughput.supports(run.peer, run.model):
        return f"no {run.peer} version of {run.model}"
    return None


def execute(runs: list[Run], budget: float, steps: int, windows: int) -> list[dict]:
    """Result rows of `runs`, each spawned with what is left of `budget` seconds."""
    deadline, rows = time.monotonic() + budget, []
    for run in runs:
        base = {"model": run.model, "peer": run.peer, "dtype": run.dtype}
        left = deadline - time.monotonic()
        reason = why_not(run) or (None if left > 20 else "out of the check's time budget")
        if reason is None:
            try:
                row = train_throughput.spawn(
                    ["--task", run.task, "--child", run.peer, "--model", run.model,
                     "--batch-size", str(workloads.BATCH_SIZES.get(run.model, 128)),
                     "--steps", str(steps), "--windows", str(windows), "--dtype", run.dtype],
                    timeout=left)
            except subprocess.TimeoutExpired:
                row = {"error": f"stopped after {left:.0f} s: the check's time budget ran out"}
        else:
            row = {"error": reason}
        rows.append({**base, **row})
        print(report.row_line(rows[-1], 0.0), flush=True)
    return rows


def measured_peak() -> str:
    """The first accelerator's bfloat16 matmul rate, measured now (beside its datasheet's)."""
    import jax

    from zoo_hardware import catalogue

    if jax.default_backend() == "cpu":
        return "no accelerator, so no matmul rate measured"
    spec = catalogue.measure_local("bfloat16", matmul_size=8192)
    return f"{spec.description}: bfloat16 8192^3 matmul {spec.peak('bfloat16') / 1e12:.0f} TFLOP/s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=330, help="seconds for all the runs")
    parser.add_argument("--steps", type=int, default=30, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results-gpu.md")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    args = parser.parse_args(argv)
    runs = plan()
    if args.dry_run:
        for run in runs:
            reason = why_not(run)
            print(f"{run.task}/{run.model} {run.dtype} {run.peer}"
                  + (f": skipped, {reason}" if reason else ""))
        return 0
    load_before = os.getloadavg()[0]
    rows = execute(runs, args.budget, args.steps, args.windows)
    sections = {"training": rows, "load": (load_before, os.getloadavg()[0])}
    report.write(args.out, sections, f"python -m benchmarks.device_benchmarks "
                 f"--budget {args.budget:g} --steps {args.steps} --windows {args.windows}")
    with open(args.out, "a") as f:
        f.write(f"\nMeasured here: {measured_peak()}.\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
