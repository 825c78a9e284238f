"""The input pipeline on a folder of JPEGs: zoo's workers against a PyTorch DataLoader,
memory at 20 k and 200 k images, input wait while training, and `zoo data pack`.

    python -m benchmarks.input_pipeline                       # 20 k images, all parts
    python -m benchmarks.input_pipeline --rss 20000,200000 --out benchmarks/results.md

The folder (128x128 JPEGs, 100 classes, 50 distinct images per class repeated) is
generated once under $ZOO_HOME/bench and reused; a larger one's first images make the
smaller ones (symlinks). Both loaders
run the same per-image work: PIL decode, random-resized crop to 112x112 with a flip
(`zoo.data.host_augment.crop_flip`, itself written with PIL: torchvision does not import
beside the CPU torch wheel), batches of 128, the same number of worker processes.
"""

from __future__ import annotations

import argparse
import functools
import json
import io
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.data.host_augment import crop_flip
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


def zoo_rate(root: Path, workers: int, batches: int) -> float:
    """Images/s of zoo's training batches (after one batch per worker of warm-up)."""
    data = load_image_set(f"folder:{root}", CROP, 3)
    inputs = Inputs(data.splits, seed=0, workers=workers,
                    augment=functools.partial(crop_flip, size=(CROP, CROP)))
    try:
        stream = inputs.train(BATCH, epoch=0)
        for _ in range(max(workers, 1)):
            next(stream)
        t0 = time.perf_counter()
        for _ in range(batches):
            batch = next(stream)
        assert batch["image"].shape == (BATCH, CROP, CROP, 3)
        return batches * BATCH / (time.perf_counter() - t0)
    finally:
        inputs.close()


class _TorchImages:
    """The same files and per-image work as zoo's, as a torch map-style data set."""

    def __init__(self, source):
        self.source = source

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        import torch

        rng = np.random.default_rng(index)
        example = crop_flip(self.source.read(index), rng, (CROP, CROP))
        return torch.from_numpy(example["image"]), int(example["label"])


def torch_rate(root: Path, workers: int, batches: int) -> float:
    import torch

    torch.set_num_threads(1)
    data = load_image_set(f"folder:{root}", CROP, 3)
    loader = torch.utils.data.DataLoader(
        _TorchImages(data.splits["train"]), batch_size=BATCH, shuffle=True, drop_last=True,
        num_workers=workers, persistent_workers=workers > 0,
        multiprocessing_context="spawn" if workers else None, prefetch_factor=2 if workers else None)
    stream = iter(loader)
    for _ in range(max(workers, 1)):
        next(stream)
    t0 = time.perf_counter()
    for _ in range(batches):
        images, _ = next(stream)
    assert tuple(images.shape) == (BATCH, CROP, CROP, 3)
    return batches * BATCH / (time.perf_counter() - t0)


def peak_rss(root: Path, workers: int, batches: int) -> int:
    """Peak RSS of the process tree (main + workers) over `batches` training batches."""
    with PeakMemory(interval=0.2) as memory:
        data = load_image_set(f"folder:{root}", CROP, 3)
        inputs = Inputs(data.splits, seed=0, workers=workers,
                        augment=functools.partial(crop_flip, size=(CROP, CROP)))
        try:
            for _, _ in zip(range(batches), inputs.train(BATCH, epoch=0)):
                pass
        finally:
            inputs.close()
    return memory.peak


def train_wait(root: Path, workers: int, steps: int, workdir: Path) -> tuple[str, int]:
    """The run log's input-wait line and run.json's peak RSS of `zoo run classification
    --model resnet` on the folder: one epoch of `steps` steps of batch 32 (crop_flip in
    the workers; batch 32 keeps the ResNet's activations small on a shared machine)."""
    cmd = [sys.executable, "-m", "zoo.cli.main", "run", "classification", "--data",
           f"folder:{root}", "--model", "resnet", "--set", f"image_size={CROP}", "--set",
           "augment=crop_flip", "--set", f"train.max_examples={steps * 32}", "--epochs", "1",
           "--batch-size", "32", "--set", "train.eval_batch_size=32", "--workers",
           str(workers), "--workdir", str(workdir)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wait = next(line for line in (done.stdout + done.stderr).splitlines() if "waited" in line)
    facts = json.loads((workdir / "run.json").read_text())["reading"]
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20_000, help="folder for the rates")
    parser.add_argument("--rss", default="20000", help="folder sizes whose peak RSS to report")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--batches", type=int, default=20, help="timed batches per loader")
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

    zoo = zoo_rate(root, args.workers, args.batches)
    row("zoo input workers (decode + crop_flip, batch 128)", f"{zoo:,.0f} images/s")
    try:
        torch = torch_rate(root, args.workers, args.batches)
        row("PyTorch DataLoader, same PIL work", f"{torch:,.0f} images/s")
        row("zoo / PyTorch", f"{zoo / torch:.2f}x")
    except ImportError:
        row("PyTorch DataLoader", "skipped (pip install torch==2.13.0)")
    for n in sorted(map(int, args.rss.split(","))):
        row(f"peak RSS, {n:,} images (main + {args.workers} worker(s), 40 batches)",
            f"{peak_rss(roots[n], args.workers, 40) / 2**20:,.0f} MiB")
    scratch = cache_dir("bench") / f"scratch-{os.getpid()}"
    if args.train_steps:
        biggest = max(roots)
        wait, peak = train_wait(roots[biggest], args.workers, args.train_steps, scratch / "run")
        row(f"ResNet training on {biggest:,} images, {args.train_steps} steps of 32: input wait",
            wait)
        row(f"ResNet training on {biggest:,} images: peak RSS (run.json)", f"{peak / 2**20:,.0f} MiB")
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
             f"Load average before {load_before[0]:.1f}, after {load_after[0]:.1f}.", "",
             "| what | measured |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows), ""]
    print("\n".join(table))
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + "\n".join(table))


if __name__ == "__main__":
    main()
