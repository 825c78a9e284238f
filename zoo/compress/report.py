"""The compression report: per-layer sparsity, bits and bytes, accuracy and latency.

Sizes are bytes on disk: the compressed file as written, against the same model state
written as a plain float32 checkpoint (an uncompressed .npz), the way Deep Compression
counts (weights at 32 bits each).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from rich.console import Console
from rich.table import Table

from zoo.data import loader
from zoo.harness.steps import eval_step, merge_train_state
from zoo.harness.trainer import Session
from zoo.task import Task
from zoo_hardware import compression, placement
from zoo_hardware.quantization import Quantized


def build_report(task: Task, source: str, weights: Path, plan, state: Mapping,
                 quantized: Mapping, params: set, accuracy: tuple[Mapping, Mapping],
                 latency: Mapping[str, Any], activations: Mapping[str, Any]) -> dict[str, Any]:
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
        "activations": dict(activations),
    }


def latency_ms(sessions: Mapping[str, Session], *, rounds: int = 5,
               calls: int = 5) -> dict[str, dict[str, dict[str, float]]]:
    """Median ms (wall and this process's CPU) of one eval call per model, on a test batch
    of the eval batch size and on one example (one per device of the mesh):
    {model: {batch size: {"wall", "cpu"}}}.

    The models take turns round by round, so load from other processes on a shared
    machine falls on all alike.
    """
    first = next(iter(sessions.values()))
    size = int(first.task.config.train.eval_batch_size)
    batch = next(loader.eval_batches(first.data.splits["test"], size))
    calls_by = {(name, n): _eval_call(session, {k: v[:n] for k, v in batch.items()})
                for n in (size, first.mesh.size) for name, session in sessions.items()}
    wall: dict[tuple, list[float]] = {key: [] for key in calls_by}
    cpu: dict[tuple, list[float]] = {key: [] for key in calls_by}
    for call in calls_by.values():  # compile and warm up
        jax.block_until_ready(call())
    for _ in range(rounds):
        for key, call in calls_by.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(calls):
                out = call()
            jax.block_until_ready(out)
            wall[key].append(1000 * (time.perf_counter() - t0) / calls)
            cpu[key].append(1000 * (time.process_time() - c0) / calls)
    result: dict[str, dict[str, dict[str, float]]] = {name: {} for name in sessions}
    for name, n in calls_by:
        result[name][str(n)] = {"wall": round(statistics.median(wall[name, n]), 3),
                                "cpu": round(statistics.median(cpu[name, n]), 3)}
    return result


def _eval_call(session: Session, batch: Mapping) -> Callable[[], Any]:
    """The session's eval step on `batch`: its compiled one at the eval batch size, else
    the same step jitted for this size."""
    placed = placement.put_batch(dict(batch), session.mesh)
    if len(next(iter(batch.values()))) == session.task.config.train.eval_batch_size:
        return lambda: session.steps.evaluate(session.state, placed)
    step = eval_step(session.task, merge_train_state(session.graphdef, session.state)[0])
    return lambda: step(session.state, placed)


def _pins(plan: Mapping[str, Any]) -> str:
    """ " (conv1 25%, conv2 70% pinned)" for a plan with `--prune-layers`, else "". """
    pins = ", ".join(f"{name} {fraction:.0%}" for name, fraction in plan.get("layers") or ())
    return f" ({pins} pinned)" if pins else ""


def print_report(report: Mapping[str, Any], console: Console | None = None) -> None:
    """The report as a rich table on the terminal."""
    console = console or Console()
    table = Table("layer", "params", "sparsity", "bits/weight", "float32", "compressed", "ratio",
                  title=f"{report['task']} ({report['model']}): {report['plan']['scheme'] or 'float'}"
                        f", prune {report['plan']['prune']:.0%}{_pins(report['plan'])}")
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
    metric = report["metric"]
    console.print(f"test {metric}: {report['before'][metric]:.4f} -> {report['after'][metric]:.4f} "
                  f"({report['drop_points']:+.2f} points drop)")
    for name, by_batch in report["latency_ms"].items():
        console.print(f"eval latency on {report['device']}, {name}: " + ", ".join(
            f"batch {n} {t['wall']:.2f} ms wall / {t['cpu']:.2f} ms CPU" for n, t in by_batch.items()))
    console.print(report["activations"]["note"])


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KB"
