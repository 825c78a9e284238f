"""Writing benchmark results: a console line per peer and benchmarks/results.md."""

from __future__ import annotations

import datetime
import os
import platform
from importlib import metadata


def peak_fraction(row: dict) -> float | None:
    """The row's achieved FLOP/s over its accelerator's datasheet peak in its dtype
    (zoo_hardware.catalogue), for a GPU or TPU the catalogue knows; else None."""
    from zoo_hardware import catalogue

    kind = row.get("device_kind", "").lower().replace(" ", "-")
    if row.get("device") in (None, "cpu") or "achieved_gflops" not in row:
        return None
    for spec in catalogue.CATALOGUE.values():
        peak = spec.peak(row.get("dtype", "float32"))
        if spec.name in kind and peak:
            return row["achieved_gflops"] * 1e9 / peak
    return None


def row_line(row: dict, seconds: float) -> str:
    if "error" in row:
        return f"{row['model']:7s} {row['peer']:18s} skipped: {row['error']}"
    return (f"{row['model']:7s} {row['peer']:18s} {row.get('dtype', 'float32'):8s} "
            f"{row.get('device', 'cpu'):4s} {row['median']:9,.0f} ex/s "
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


def write(path: str, sections: dict, command: str) -> None:
    """Writes the markdown report of `command` (the command line, as the user typed it)."""
    accelerators = sorted({r["device_kind"] for r in sections["training"]
                           if r.get("device") not in (None, "cpu") and r.get("device_kind")})
    lines = [
        "# Benchmark results", "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {_cpu()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        + (f"; accelerator: {', '.join(accelerators)}" if accelerators else ""),
        f"- libraries: {_versions()}",
        "- load average (1 min): {:.2f} before, {:.2f} after (cores busy with other work slow "
        "every peer)".format(*sections["load"]) if "load" in sections else "- load average: not measured",
        f"- command: `{command}`", "",
        "## Training throughput (examples/s, median of windows after warm-up)", "",
        "| model | peer | dtype | device | batch | median ex/s | ratio to bare jax.jit "
        "| windows min-max | compile s | peak RSS MB | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = sections["training"]
    bare = {(r["model"], r.get("dtype")): r["median"] for r in rows
            if r.get("peer") == "bare jax.jit"}
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['peer']} | {r.get('dtype', '')} | | | skipped "
                         f"| | | | | {r['error']} |")
            continue
        ratio = r["median"] / bare.get((r["model"], r.get("dtype")), float("nan"))
        note = r.get("note", "")
        if "achieved_gflops" in r:
            fraction = peak_fraction(r)
            note = (f"{r['flops_per_example'] / 1e6:.1f} MFLOP/example, "
                    f"{r['achieved_gflops']:.1f} GFLOP/s"
                    + (f" ({fraction:.1%} of the chip's peak)" if fraction is not None else "")
                    + (f"; {note}" if note else ""))
        lines.append(f"| {r['model']} | {r['peer']} | {r.get('dtype', 'float32')} "
                     f"| {r.get('device', 'cpu')} | {r['batch_size']} | {r['median']:,.0f} | {ratio:.2f} | "
                     f"{min(r['windows']):,.0f}-{max(r['windows']):,.0f} | "
                     f"{r['compile_seconds']:.1f} | {r['peak_rss_mb']:.0f} | {note} |")
    extras = sections.get("extras")
    if extras:
        lines += ["", "## Other figures", "",
                  f"- jitted 2048x2048 float32 matmul: {extras['matmul_peak_gflops']:.0f} GFLOP/s",
                  f"- input pipeline alone (seeded shuffle + batch gather, batch {extras['pipeline_batch_size']}): "
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
