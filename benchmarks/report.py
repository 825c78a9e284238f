"""Writing benchmark results: a console line per peer and benchmarks/results.md."""

from __future__ import annotations

import datetime
import os
import platform
from importlib import metadata


def row_line(row: dict, seconds: float) -> str:
    if "error" in row:
        return f"{row['model']:7s} {row['peer']:18s} skipped: {row['error']}"
    return (f"{row['model']:7s} {row['peer']:18s} {row['median']:9,.0f} ex/s "
            f"(windows {min(row['windows']):,.0f}-{max(row['windows']):,.0f}), "
            f"compile {row['compile_seconds']:.1f}s, peak RSS {row['peak_rss_mb']:.0f} MB "
            f"[{seconds:.0f}s]")


def _versions() -> str:
    names = ("jax", "jaxlib", "flax", "optax", "keras", "torch")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write(path: str, sections: dict, args: dict) -> None:
    lines = [
        "# Benchmark results", "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {_cpu()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"- libraries: {_versions()}",
        f"- command: `python -m benchmarks.train_throughput "
        f"{'--all ' if args['all'] else ''}"
        f"{'--task %s ' % args['task'] if args.get('task', 'classification') != 'classification' else ''}"
        f"{'--batch-size %d ' % args['batch_size'] if args.get('batch_size') else ''}"
        f"--steps {args['steps']} --windows {args['windows']}`", "",
        "## Training throughput (examples/s, median of windows after warm-up)", "",
        "| model | peer | batch | median ex/s | ratio to bare jax.jit | windows min-max | compile s | peak RSS MB | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = sections["training"]
    bare = {r["model"]: r["median"] for r in rows if r.get("peer") == "bare jax.jit"}
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['peer']} | | skipped | | | | | {r['error']} |")
            continue
        ratio = r["median"] / bare[r["model"]] if r["model"] in bare else float("nan")
        note = r.get("note", "")
        if "achieved_gflops" in r:
            note = (f"{r['flops_per_example'] / 1e6:.1f} MFLOP/example, "
                    f"{r['achieved_gflops']:.1f} GFLOP/s {note}").strip()
        lines.append(f"| {r['model']} | {r['peer']} | {r['batch_size']} | {r['median']:,.0f} | {ratio:.2f} | "
                     f"{min(r['windows']):,.0f}-{max(r['windows']):,.0f} | "
                     f"{r['compile_seconds']:.1f} | {r['peak_rss_mb']:.0f} | {note} |")
    extras = sections.get("extras")
    if extras:
        lines += ["", "## Other figures", "",
                  f"- jitted 2048x2048 float32 matmul: {extras['matmul_peak_gflops']:.0f} GFLOP/s",
                  f"- input pipeline alone (grain shuffle + batch gather, batch {extras['pipeline_batch_size']}): "
                  f"{extras['pipeline_examples_per_s']:,.0f} examples/s"]
        for inf in extras["inference"]:
            lines.append(f"- inference {inf['model']}: batch 1 p50 {inf['p50_ms']:.2f} ms, "
                         f"p99 {inf['p99_ms']:.2f} ms; batch 256 {inf['batch256_examples_per_s']:,.0f} examples/s")
        start = extras["start"]
        lines.append(f"- start to first train step: cold {start['cold_s']:.1f} s, warm "
                     f"{start['warm_s']:.1f} s ({start['speedup']:.1f}x)")
    lines += ["", "What these figures say and what limits them: benchmarks/README.md."]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
