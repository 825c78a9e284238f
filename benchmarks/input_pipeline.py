"""The input pipeline on a folder of JPEGs: zoo's workers against a PyTorch DataLoader,
memory at 20 k and 200 k images, input wait while training, and `zoo data pack`.

    python -m benchmarks.input_pipeline                       # 20 k images, all parts
    python -m benchmarks.input_pipeline --rss 20000,200000 --out benchmarks/results.md

The folder (128x128 JPEGs, 100 classes, 50 distinct images per class repeated) is
generated once under $ZOO_HOME/bench and reused; a larger one's first images make the
smaller ones (symlinks). Both loaders
run the same per-image work: PIL decode, random-resized crop to 112x112 with a flip
(`zoo.data.host_augment.CropFlip`, written with PIL: torchvision does not import
beside the CPU torch wheel), batches of 128, the same number of worker processes.
"""

from __future__ import annotations

import argparse
import json
import io
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from zoo.data.host_augment import CropFlip
from zoo.data.image_sets import load_image_set
from zoo.data.pipeline import Inputs, default_workers
from zoo.harness.memory import PeakMemory
from zoo.paths import cache_dir

SIZE, CROP, BATCH, CLASSES = 128, 112, 128, 100


def folder(count: int) -> Path:
    """A folder of `count` JPEGs in `CLASSES` class folders, made once (in parallel)."""
    root = cache_dir("bench") / f"jpegs-{count}"
    if (root / ".complete").exists():
        return root
    larger = sorted((int(p.name.split("-")[1]), p) for p in root.parent.glob("jpegs-*")
                    if (p / ".complete").exists() and int(p.name.split("-")[1]) > count)
    jobs = [(root, larger[0][1] if larger else None, c, count // CLASSES) for c in range(CLASSES)]
    with multiprocessing.get_context("spawn").Pool(os.cpu_count()) as pool:
        pool.starmap(_write_class, jobs)
    (root / ".complete").touch()
    return root


def _write_class(root: Path, source: Path | None, c: int, per_class: int, bank: int = 50) -> None:
    """Class `c`'s images (links to a larger folder's, if any): `bank` distinct smooth
    colour gradients with noise (~6 KB JPEGs), each file a copy of one of them, so that a
    folder of 200 k real files is written in minutes on a shared machine."""
    rng = np.random.default_rng(c)
    (root / f"c{c:03d}").mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 1, SIZE, dtype=np.float32)
    encoded = []
    for _ in range(min(bank, per_class) if source is None else 0):
        a, b = rng.uniform(0, 255, (2, 3)).astype(np.float32)
        image = a + (b - a) * (ramp[:, None, None] + ramp[None, :, None]) / 2
        image += rng.normal(0, 12, (SIZE, SIZE, 3)).astype(np.float32)
        out = io.BytesIO()
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
        encoded.append(out.getvalue())
    for i in range(per_class):
        target = root / f"c{c:03d}" / f"{i:05d}.jpg"
        if target.exists():
            continue
        if source is not None:
            target.symlink_to(source / f"c{c:03d}" / f"{i:05d}.jpg")
        else:
            target.write_bytes(encoded[i % len(encoded)])


def zoo_batches(root: Path, workers: int) -> tuple[Iterator[dict], Inputs]:
    """zoo's training batches of the folder (crop_flip in the workers), and their pipeline."""
    data = load_image_set(f"folder:{root}", CROP, 3)
    inputs = Inputs(data.splits, seed=0, workers=workers, augment=CropFlip((CROP, CROP)))
    return (batch["image"] for batch in inputs.train(BATCH, epoch=0)), inputs


class _TorchImages:
    """The same files and per-image work as zoo's, as a torch map-style data set."""

    def __init__(self, source):
        self.source = source.with_augment(CropFlip((CROP, CROP)))

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        import torch

        rng = np.random.default_rng(index)
        example = self.source.example(index, rng)
        return torch.from_numpy(example["image"]), int(example["label"])


def torch_batches(root: Path, workers: int) -> Iterator:
    """A PyTorch DataLoader's batches of the same images and work, as many workers."""
    import torch

    torch.set_num_threads(1)
    data = load_image_set(f"folder:{root}", CROP, 3)
    loader = torch.utils.data.DataLoader(
        _TorchImages(data.splits["train"]), batch_size=BATCH, shuffle=True, drop_last=True,
        num_workers=workers, persistent_workers=workers > 0,
        multiprocessing_context="spawn" if workers else None, prefetch_factor=2 if workers else None)
    return (images for images, _ in loader)


def settle(timeout: float = 60.0, poll: float = 0.25) -> None:
    """Waits until no child process uses CPU: the other loader's workers have finished
    the batches they read ahead, and compete no more with the window to come."""
    children = psutil.Process().children(recursive=True)

    def used() -> float:
        return sum(sum(child.cpu_times()[:2]) for child in children if child.is_running())

    last, deadline = used(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(poll)
        now = used()
        if now - last < 0.02:
            return
        last = now


def window_rate(stream: Iterator, batches: int, workers: list[psutil.Process],
                lead: int = 2) -> tuple[float, float]:
    """Images/s over `batches` batches of `stream`, once it is settled and the `lead`
    batches it may hold ready are taken (untimed): the rate of its workers at work; and
    their CPU-ms per image meanwhile (user + sys: the work, whatever the machine's load)."""
    settle()
    for _ in range(lead):
        next(stream)
    cpu0, t0 = _cpu_seconds(workers), time.perf_counter()
    for _ in range(batches):
        images = next(stream)
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds(workers) - cpu0
    assert tuple(images.shape) == (BATCH, CROP, CROP, 3)
    return batches * BATCH / seconds, 1000 * cpu / (batches * BATCH)


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def compare_loaders(root: Path, workers: int, batches: int,
                    windows: int) -> dict[str, list[tuple[float, float]]]:
    """Images/s and worker CPU-ms per image of zoo's and PyTorch's loaders (if torch is
    installed) in alternating windows of `batches` batches (after one batch per worker
    of warm-up each), so that both see the same moments of a shared machine, each window
    begun with the other loader idle."""
    streams = {"zoo": zoo_batches(root, workers)}
    try:
        streams["torch"] = (torch_batches(root, workers), None)
    except ImportError:
        pass
    try:
        for stream, _ in streams.values():
            for _ in range(max(workers, 1)):
                next(stream)
        zoo_workers = [psutil.Process(pid) for pid in streams["zoo"][1].readers.pids()]
        others = [p for p in psutil.Process().children(recursive=True)
                  if p.pid not in {w.pid for w in zoo_workers}]
        processes = {"zoo": zoo_workers, "torch": others}
        measured = {name: [] for name in streams}
        for _ in range(windows):
            for name, (stream, _) in streams.items():
                measured[name].append(window_rate(stream, batches, processes[name]))
        return measured
    finally:
        streams["zoo"][1].close()


def peak_rss(root: Path, workers: int, batches: int) -> int:
    """Peak RSS of the process tree (main + workers) over `batches` training batches."""
    with PeakMemory(interval=0.2) as memory:
        data = load_image_set(f"folder:{root}", CROP, 3)
        inputs = Inputs(data.splits, seed=0, workers=workers,
                        augment=CropFlip((CROP, CROP)))
        try:
            for _, _ in zip(range(batches), inputs.train(BATCH, epoch=0)):
                pass
        finally:
            inputs.close()
    return memory.peak


def train_run(root: Path, workers: int, steps: int, size: int, batch: int,
              workdir: Path) -> tuple[str, int]:
    """The run log's input-wait line and run.json's peak RSS of `zoo run classification
    --model resnet` on the folder: one epoch of `steps` steps (crop_flip to `size` in the
    workers, evaluation batches as large as the training's)."""
    cmd = [sys.executable, "-m", "zoo.cli.main", "run", "classification", "--data",
           f"folder:{root}", "--model", "resnet", "--set", f"image_size={size}", "--set",
           "augment=crop_flip", "--set", f"train.max_examples={steps * batch}", "--epochs", "1",
           "--batch-size", str(batch), "--set", f"train.eval_batch_size={batch}", "--workers",
           str(workers), "--workdir", str(workdir)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wait = next(line for line in (done.stdout + done.stderr).splitlines() if "waited" in line)
    facts = json.loads((workdir / "run.json").read_text())["reading"]
    subprocess.run(["rm", "-rf", str(workdir)], check=False)
    return wait.split(": ", 1)[1], facts["peak_rss_bytes"]


def pack_rates(root: Path, workers: int, batches: int, out: Path) -> tuple[float, float, float]:
    """`zoo data pack` examples/s, then unaugmented read rates (images/s) of the packed
    copy and of the folder itself."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "zoo.cli.main", "data", "pack", f"folder:{root}",
                    str(out), "--task", "classification", "--set", f"image_size={CROP}",
                    "--workers", str(workers)], check=True, capture_output=True)
    packed = sum(1 for _ in root.glob("c*/*.jpg")) / (time.perf_counter() - t0)
    rates = []
    for spec in (f"packed:{out}", f"folder:{root}"):
        from zoo.harness.inputs import load
        from zoo.registry import get_task

        task = get_task("classification")
        data = load(task(task.Config(data=spec, image_size=CROP)))
        inputs = Inputs(data.splits, seed=0, workers=workers)
        try:
            stream = inputs.evaluate("train", BATCH)
            next(stream)
            t0 = time.perf_counter()
            for _ in range(batches):
                next(stream)
            rates.append(batches * BATCH / (time.perf_counter() - t0))
        finally:
            inputs.close()
    return packed, rates[0], rates[1]


def versions() -> str:
    """The versions of what the figures depend on: Python, Pillow, JAX, PyTorch."""
    import importlib.metadata
    import platform

    found = [f"Python {platform.python_version()}"]
    for name in ("pillow", "jax", "torch"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20_000, help="folder for the rates")
    parser.add_argument("--rss", default="20000", help="folder sizes whose peak RSS to report")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--batches", type=int, default=10, help="timed batches per window")
    parser.add_argument("--windows", type=int, default=3, help="alternating windows per loader")
    parser.add_argument("--train-steps", type=int, default=8, help="0: skip the training run")
    parser.add_argument("--skip-pack", action="store_true")
    parser.add_argument("--out", type=Path, help="append the table to this markdown file")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    roots = {n: folder(n) for n in sorted({args.images, *map(int, args.rss.split(","))},
                                          reverse=True)}
    root = roots[args.images]
    print(f"load average {load_before[0]:.1f}; {args.workers} worker(s)", flush=True)
    rows = []

    def row(what: str, measured: str) -> None:
        rows.append((what, measured))
        print(f"| {what} | {measured} |", flush=True)

    measured = compare_loaders(root, args.workers, args.batches, args.windows)
    rates = {name: [rate for rate, _ in windows] for name, windows in measured.items()}
    work = {name: statistics.median(cpu for _, cpu in windows)
            for name, windows in measured.items()}
    zoo = rates["zoo"]
    row("zoo input workers (decode + crop_flip, batch 128), median of windows",
        f"{statistics.median(zoo):,.0f} images/s ({', '.join(f'{r:,.0f}' for r in zoo)}); "
        f"workers' CPU {work['zoo']:.2f} ms an image")
    if "torch" not in rates:
        row("PyTorch DataLoader", "skipped (pip install torch==2.13.0)")
    else:
        torch = rates["torch"]
        row("PyTorch DataLoader, same PIL work, median of windows",
            f"{statistics.median(torch):,.0f} images/s ({', '.join(f'{r:,.0f}' for r in torch)}); "
            f"workers' CPU {work['torch']:.2f} ms an image")
        row("zoo / PyTorch (median of the windows' ratios; of CPU per image)",
            f"{statistics.median(z / t for z, t in zip(zoo, torch)):.2f}x; "
            f"{work['torch'] / work['zoo']:.2f}x")
    for n in sorted(map(int, args.rss.split(","))):
        row(f"peak RSS, {n:,} images (main + {args.workers} worker(s), 40 batches)",
            f"{peak_rss(roots[n], args.workers, 40) / 2**20:,.0f} MiB")
    scratch = cache_dir("bench") / f"scratch-{os.getpid()}"
    for size, batch, counts in ((CROP, 32, [max(roots)]), (32, 32, sorted(roots))):
        for n in counts if args.train_steps else ():
            wait, peak = train_run(roots[n], args.workers, args.train_steps, size, batch,
                                   scratch / "run")
            row(f"ResNet at {size}x{size} on {n:,} images, {args.train_steps} steps of {batch}: "
                f"input wait", wait)
            row(f"ResNet at {size}x{size} on {n:,} images, batch {batch}: peak RSS (run.json)",
                f"{peak / 2**20:,.0f} MiB")
    if not args.skip_pack:
        packed, read_packed, read_folder = pack_rates(root, args.workers, args.batches,
                                                      scratch / "pack")
        row("zoo data pack (decode + resize to 112, ArrayRecord)", f"{packed:,.0f} images/s")
        row("read packed:, no augmentation", f"{read_packed:,.0f} images/s")
        row("read folder:, no augmentation", f"{read_folder:,.0f} images/s")
    subprocess.run(["rm", "-rf", str(scratch)], check=False)
    load_after = os.getloadavg()
    table = [f"## Input pipeline ({args.images:,} JPEGs 128x128, {args.workers} worker(s), "
             f"{os.cpu_count()} cores)", "",
             f"`python -m benchmarks.input_pipeline {' '.join(argv or sys.argv[1:])}`, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {versions()}. Load "
             f"average before {load_before[0]:.1f}, after {load_after[0]:.1f}.", "",
             "| what | measured |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows), ""]
    print("\n".join(table))
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + "\n".join(table))


if __name__ == "__main__":
    main()
