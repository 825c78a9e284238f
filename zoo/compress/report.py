"""The compression report: per-layer sparsity, bits and bytes, accuracy and latency.

Sizes are bytes on disk: the compressed file as written, against the same model state
written as a plain float32 checkpoint (an uncompressed .npz), the way Deep Compression
counts (weights at 32 bits each).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from rich.console import Console
from rich.table import Table

from zoo.data import loader
from zoo.harness.trainer import Session
from zoo.task import Task
from zoo_hardware import compression, placement
from zoo_hardware.quantization import Quantized


def build_report(task: Task, source: str, weights: Path, plan, state: Mapping,
                 quantized: Mapping, params: set, accuracy: tuple[Mapping, Mapping],
                 latency: Mapping[str, float]) -> dict[str, Any]:
    """The contents of compression.json; sizes are measured on the files."""
    size = weights.stat().st_size
    blobs = compression.blob_bytes(weights)
    flat = compression.flatten(state)
    layers, other = [], {"params": 0, "bytes_before": 0, "bytes_after": 0}
    for path, array in flat.items():
        n, stored = int(array.size), blobs[path]
        if path in quantized or (path in params and array.ndim >= 2):
            q: Quantized | None = quantized.get(path)
            layers.append({"layer": "/".join(map(str, path)), "params": n,
                           "sparsity": float(np.mean(np.asarray(array) == 0)),
                           "codes": int(len(q.codebook)) if q is not None and q.codebook is not None
                           else None,
                           "bits_per_weight": 8 * stored / n, "bytes_before": 4 * n,
                           "bytes_after": stored})
        else:
            other["params"] += n
            other["bytes_before"] += 4 * n
            other["bytes_after"] += stored
    before = compression.float32_bytes(state)
    compressed = sum(r["params"] for r in layers)  # Deep Compression's "weights"
    zeros = sum(r["sparsity"] * r["params"] for r in layers)
    metric = task.metric
    return {
        "task": task.name, "model": task.config.model, "source": source, "file": weights.name,
        "weights": compressed,
        "plan": plan.describe(), "layers": layers, "other_tensors": other,
        "total": {"params": compressed + other["params"],
                  "sparsity": zeros / max(compressed, 1),
                  "bits_per_weight": 8 * size / max(compressed + other["params"], 1),
                  "bytes_before": before, "bytes_after": size, "ratio": before / size},
        "metric": metric, "before": dict(accuracy[0]), "after": dict(accuracy[1]),
        "drop_points": 100 * (accuracy[0][metric] - accuracy[1][metric]),
        "latency_ms": dict(latency), "device": jax.devices()[0].platform,
    }


def latency_ms(before: Session, after: Session, *, rounds: int = 7, calls: int = 10) -> dict[str, float]:
    """Median milliseconds of one compiled eval step on a test batch, before and after.

    Both models run in alternating rounds, so load from other processes on a shared
    machine falls on both alike.
    """
    batch = next(loader.eval_batches(before.data.splits["test"], before.task.config.train.eval_batch_size))
    placed = {"before": (before, placement.put_batch(batch, before.mesh)),
              "after": (after, placement.put_batch(batch, after.mesh))}
    times: dict[str, list[float]] = {k: [] for k in placed}
    for name, (session, b) in placed.items():  # warm-up
        jax.block_until_ready(session.steps.evaluate(session.state, b))
    for _ in range(rounds):
        for name, (session, b) in placed.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                out = session.steps.evaluate(session.state, b)
            jax.block_until_ready(out)
            times[name].append(1000 * (time.perf_counter() - t0) / calls)
    result = {k: round(statistics.median(v), 3) for k, v in times.items()}
    result["batch"] = int(before.task.config.train.eval_batch_size)
    return result


def print_report(report: Mapping[str, Any], console: Console | None = None) -> None:
    """The report as a rich table on the terminal."""
    console = console or Console()
    table = Table("layer", "params", "sparsity", "bits/weight", "float32", "compressed", "ratio",
                  title=f"{report['task']} ({report['model']}): {report['plan']['scheme'] or 'float'}"
                        f", prune {report['plan']['prune']:.0%}")
    for row in report["layers"]:
        table.add_row(row["layer"], f"{row['params']:,}", f"{row['sparsity']:.1%}",
                      f"{row['bits_per_weight']:.2f}", _kb(row["bytes_before"]),
                      _kb(row["bytes_after"]), f"{row['bytes_before'] / max(row['bytes_after'], 1):.1f}x")
    other = report["other_tensors"]
    if other["params"]:
        table.add_row("other (biases, norms)", f"{other['params']:,}", "-", "32", _kb(other["bytes_before"]),
                      _kb(other["bytes_after"]), "-")
    total = report["total"]
    table.add_row("[bold]file on disk[/bold]", f"{total['params']:,}", f"{total['sparsity']:.1%}",
                  f"{total['bits_per_weight']:.2f}", _kb(total["bytes_before"]), _kb(total["bytes_after"]),
                  f"[bold]{total['ratio']:.1f}x[/bold]")
    console.print(table)
    metric, lat = report["metric"], report["latency_ms"]
    console.print(f"test {metric}: {report['before'][metric]:.4f} -> {report['after'][metric]:.4f} "
                  f"({report['drop_points']:+.2f} points drop)")
    console.print(f"eval step latency on {report['device']} (batch {lat['batch']}): "
                  f"{lat['before']:.2f} ms -> {lat['after']:.2f} ms. Weights are decoded to float32 "
                  f"on load: XLA runs dense float kernels, so pruning and weight quantization save "
                  f"size, not time, here; fake-quantized activations add a little work.")


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KB"
