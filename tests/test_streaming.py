"""Streamed splits: file-backed sources read by input worker processes.

The same batches as the same images in memory, for any number of workers; each process
of a multi-process run reads only its rows; unreadable files under both policies; a
worker that dies; memory that does not grow with the data set; a split smaller than
one batch. Worker processes take about a second of CPU to start: fixtures share them.
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal

import jax.numpy as jnp
import numpy as np
import psutil
import pytest
from PIL import Image

from zoo.data import host_augment, loader
from zoo.data.image_sets import load_image_set
from zoo.data.images import image_folder
from zoo.data.pipeline import Inputs
from zoo.data.sources import ArraySource, Source
from zoo.data.workers import Request, read_batch
from zoo.errors import ZooError
from zoo.task import row_mean

from helpers import EXAMPLE_PLUGIN, history, kill_and_resume, latest_params, zoo_cli


def write_folder(root, per_class: int, size=(12, 10), classes=("cat", "dog"), suffix=".png",
                 seed=0):
    """`root/<class>/<i><suffix>`: random images of `size` (h, w)."""
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:05d}{suffix}")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("images"), 15)


@pytest.fixture(scope="module")
def streamed(folder):
    """The folder as `folder:` streams it, read by two worker processes."""
    data = load_image_set(f"folder:{folder}", 8, 3)
    inputs = Inputs(data.splits, seed=3, workers=2)
    yield data, inputs
    inputs.close()


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_streamed_folder_gives_the_batches_of_the_same_images_in_memory(folder, streamed):
    data, inputs = streamed
    images, labels, _ = image_folder(folder, (8, 8), 3)  # what folder: loaded before
    index = {split: source.indices for split, source in data.splits.items()}
    memory = Inputs({s: {"image": images[i], "label": labels[i]} for s, i in index.items()},
                    seed=3, workers=2)
    assert inputs.streamed == ["test", "train", "val"] and not memory.streamed  # no pool
    for epoch in (0, 1):
        streamed_batches = list(inputs.train(8, epoch=epoch))
        assert len(streamed_batches) == inputs.steps_per_epoch(8) == 2
        assert all(map(_same, streamed_batches, memory.train(8, epoch=epoch)))
    assert all(map(_same, inputs.evaluate("val", 4), memory.evaluate("val", 4)))


def test_input_workers_do_not_import_jax(streamed):
    _, inputs = streamed
    maps = [open(f"/proc/{pid}/maps").read() for pid in inputs.readers.pids()]
    assert len(maps) == 2 and not any("jaxlib" in m for m in maps)


def test_host_augmentation_is_the_same_for_any_number_of_workers(streamed):
    data, _ = streamed
    crop = functools.partial(host_augment.crop_flip, size=(8, 8))
    here = Inputs(data.splits, seed=3, workers=0, augment=crop)
    pooled = Inputs(data.splits, seed=3, workers=1, augment=crop)
    try:
        first = list(here.train(8, epoch=0))
        assert all(map(_same, first, pooled.train(8, epoch=0)))
        assert not _same(first[0], next(here.train(8, epoch=1)))  # reshuffled, re-drawn
        plain = next(loader.train_batches(data.splits["train"], 8, seed=3, epoch=0))
        assert np.array_equal(first[0]["label"], plain["label"])  # same examples, cropped
        assert not np.array_equal(first[0]["image"], plain["image"])
    finally:
        pooled.close()


class Recording(Source):
    """Examples 0..n-1 that remember which were read (in this process)."""

    def __init__(self, n: int):
        self.n, self.reads = n, []

    def __len__(self):
        return self.n

    def read(self, index):
        self.reads.append(index)
        return {"x": np.float32(index)}

    def fingerprint(self):
        return str(self.n)


def test_each_process_reads_only_its_own_rows_of_a_batch():
    """Two processes of 4 rows each (placement.process_rows) read disjoint examples that
    together make the global batch."""
    epoch = list(loader.train_batches(ArraySource({"x": np.arange(40)}), 8, seed=1, epoch=2))
    reads = []
    for rows in (slice(0, 4), slice(4, 8)):
        source = Recording(40)
        batches = list(Inputs({"train": source}, seed=1, workers=0).train(8, epoch=2, rows=rows))
        assert [len(b["x"]) for b in batches] == [4] * 5
        assert source.reads == [i for b in epoch for i in b["x"][rows]]
        reads.append(source.reads)
    assert not set(reads[0]) & set(reads[1]) and len(reads[0] + reads[1]) == 40


def test_a_split_smaller_than_one_batch_is_one_masked_batch():
    inputs = Inputs({"train": {"x": np.arange(5.0)}}, seed=0)
    assert inputs.steps_per_epoch(8) == 1
    (batch,) = inputs.train(8, epoch=0)
    assert batch["mask"].tolist() == [1] * 5 + [0] * 3
    assert sorted(batch["x"][:5]) == [0, 1, 2, 3, 4]  # each once, then repeats
    assert np.array_equal(batch["x"][5:], batch["x"][:3])
    losses = jnp.asarray(batch["x"])
    assert float(row_mean(losses, batch)) == pytest.approx(2.0)  # the padding does not count
    assert float(row_mean(losses, {})) == float(losses.mean())


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """A folder with a corrupt PNG and a truncated JPEG among good images."""
    root = write_folder(tmp_path_factory.mktemp("damaged"), 6, suffix=".jpg")
    (root / "cat" / "00001.jpg").write_bytes(b"not an image at all")
    jpeg = (root / "dog" / "00002.jpg").read_bytes()
    (root / "dog" / "00002.jpg").write_bytes(jpeg[:len(jpeg) // 3])
    return root


@pytest.mark.parametrize("bad", ["cat/00001.jpg", "dog/00002.jpg"])
def test_an_unreadable_file_stops_the_run_naming_it(damaged, bad):
    data = load_image_set(f"folder:{damaged}", 8, 3)
    split, index = next((name, i) for name, s in data.splits.items() for i in range(len(s))
                        if s.origin(i) == str(damaged / bad))
    request = Request(split, np.array([index - 1 if index else index + 1, index]))
    with pytest.raises(ZooError, match=rf"{bad}.*--on-bad-example skip"):
        read_batch(data.splits[split], request, "raise")


def test_skipped_files_are_masked_out_and_counted(damaged):
    data = load_image_set(f"folder:{damaged}", 8, 3)
    inputs = Inputs(data.splits, seed=0, workers=1, on_bad="skip")
    try:
        batches = [b for split in ("train", "val", "test") for b in inputs.evaluate(split, 4)]
        trained = list(inputs.train(4, epoch=0))
    finally:
        inputs.close()
    assert all(b["image"].shape == (4, 8, 8, 3) for b in batches + trained)
    assert all("mask" in b for b in trained)  # skip: any training row may be left out
    assert sum(b["mask"].sum() for b in batches) == 12 - 2  # every image read once
    assert {problem.split(":")[0] for problem in inputs.bad} == \
        {str(damaged / "cat" / "00001.jpg"), str(damaged / "dog" / "00002.jpg")}


class DiesOnRead(Source):
    """A decoder that crashes its process (as a segfault or the OOM killer would)."""

    def __len__(self):
        return 16

    def read(self, index):
        if index == 5:
            os.kill(os.getpid(), signal.SIGKILL)
        return {"x": np.float32(index)}

    def fingerprint(self):
        return "dies"


@pytest.mark.timeout(60)
def test_a_worker_that_dies_is_one_clear_error_not_a_hang():
    inputs = Inputs({"train": DiesOnRead(), "val": DiesOnRead(), "test": DiesOnRead()},
                    seed=0, workers=1)
    try:
        with pytest.raises(ZooError, match=r"input worker process died \(exit code -9\)"):
            list(inputs.evaluate("val", 4))
    finally:
        inputs.close()


def _tree_rss() -> int:
    me = psutil.Process()
    return me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))


def test_memory_does_not_grow_with_the_number_of_images(tmp_path):
    """An epoch over 1,000 images (128x128 JPEGs, 49 MB decoded) grows the process tree by
    no more than one over 100: only file names are held, never decoded images."""
    growth = {}
    for count in (50, 500):  # per class; batches of 20: both epochs reach a steady state
        root = write_folder(tmp_path / str(count), count, size=(128, 128), suffix=".jpg")
        data = load_image_set(f"folder:{root}", 128, 3)
        inputs = Inputs(data.splits, seed=0, workers=1)
        try:
            before = _tree_rss()
            peak = max(_tree_rss() for _ in inputs.train(20, epoch=0))
        finally:
            inputs.close()
        growth[count] = peak - before
    assert growth[500] < growth[50] + 20 * 2**20, growth  # holding images would add 44 MB


def test_a_streamed_run_killed_mid_epoch_resumes_bitwise(tmp_path):
    """SIGKILL between checkpoints of a run whose points are a JSON-lines file read by a
    worker process: resumed, it ends with the weights and history of an unbroken run."""
    rng = np.random.default_rng(0)
    with open(tmp_path / "points.jsonl", "w") as f:
        for x, label in zip(rng.normal(size=(1500, 2)), rng.integers(0, 2, 1500)):
            f.write(json.dumps({"x": x.tolist(), "label": int(label)}) + "\n")
    args = ["run", "spirals", "--plugin", str(EXAMPLE_PLUGIN), "--data",
            f"jsonl:{tmp_path / 'points.jsonl'}", "--epochs", "2", "--checkpoint-every", "5",
            "--workers", "1", "--quiet"]  # 16 steps an epoch: the kill lands mid-epoch
    zoo_cli(*args, "--workdir", str(tmp_path / "clean"), check=True)
    (record,) = kill_and_resume(args, tmp_path / "killed", ["step"], random.Random(0))
    assert record["landed"] and record["step"] % 16, record
    clean, killed = latest_params(tmp_path / "clean"), latest_params(tmp_path / "killed")
    assert all(np.array_equal(clean[k], killed[k]) for k in clean)
    assert history(tmp_path / "clean") == history(tmp_path / "killed")
