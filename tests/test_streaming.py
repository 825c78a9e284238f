"""Streamed splits: file-backed sources read by input worker processes.

The same batches as the same images in memory, for any number of workers; each process
of a two-process run reads and decodes only its rows; unreadable files under both policies; a
worker that dies; memory that does not grow with the data set; a split smaller than
one batch. Worker processes take about a second of CPU to start: fixtures share them.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import sys

import jax.numpy as jnp
import numpy as np
import psutil
import pytest
from PIL import Image

from zoo.data import host_augment, loader
from zoo.data.image_sets import load_image_set
from zoo.data.image_files import ImageFiles
from zoo.data.images import image_folder
from zoo.data.pipeline import Inputs
from zoo.data.sources import ArraySource, Source
from zoo.data.workers import Request, read_batch
from zoo.errors import ZooError
from zoo.task import row_mean

from helpers import (EXAMPLE_PLUGIN, free_port, history, kill_and_resume, latest_params,
                     run_two_processes, zoo_here)


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


def test_a_batch_s_shared_memory_carries_the_next_batch_once_read(streamed):
    """A worker writes a batch into the block of one the main process has copied out:
    the kernel maps and zeroes a block's pages once, not for every batch."""
    data, inputs = streamed
    request, names = Request("val", np.arange(4) % inputs.size("val")), []
    for _ in range(3):
        future = inputs.readers.submit(request)
        batch = inputs.readers.result(future).arrays
        names.append(future.result().arrays.name)
        assert _same(batch, read_batch(data.splits["val"], request, "raise").arrays)
    assert names[0] == names[1] == names[2], names


def test_host_augmentation_is_the_same_for_any_number_of_workers(streamed):
    data, _ = streamed
    crop = host_augment.CropFlip((8, 8))  # reads each file itself (ImageFiles.augmented)
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


def test_a_crop_decoded_at_reduced_scale_is_the_crop_of_the_full_image(tmp_path):
    """CropFlip draws its crop from the file's header and decodes a JPEG at 1/2..1/8
    scale when the crop allows: the same crop as `crop_flip` of the decoded image (the
    same random draws), exactly for a PNG, within JPEG's scaling error otherwise."""
    ramp = np.linspace(0, 255, 128)
    pixels = np.stack([ramp[:, None] + 0 * ramp, 0 * ramp[:, None] + ramp,
                       np.full((128, 128), 90.0)], -1).astype(np.uint8)
    crop = host_augment.CropFlip((12, 16))
    for suffix in (".png", ".jpg"):
        Image.fromarray(pixels).save(tmp_path / f"a{suffix}", quality=95)
        files = ImageFiles(tmp_path, [f"a{suffix}"], np.zeros(1), (12, 16), 3)
        for seed in range(8):
            direct = files.augmented(0, crop, np.random.default_rng(seed))["image"]
            full = crop(files.read(0), np.random.default_rng(seed))["image"]
            assert direct.shape == (12, 16, 3) and direct.dtype == np.uint8
            error = np.abs(direct.astype(int) - full).max()
            assert error == 0 if suffix == ".png" else error <= 3, (suffix, seed, error)


def test_two_processes_each_read_and_decode_only_their_own_rows(folder, tmp_path):
    """Two jax.distributed processes (one CPU device each) read an epoch of a folder,
    each with its rows of every batch from the mesh and an input worker: the files each
    decodes are its half of every batch of the one-process order, and nothing else."""
    import sharded_reader

    train = load_image_set(f"folder:{folder}", 8, 3).splits["train"]
    (tmp_path / "train.pickle").write_bytes(pickle.dumps(train))
    port = free_port()
    outputs = run_two_processes(lambda rank: [
        sys.executable, sharded_reader.__file__, str(port), str(rank),
        str(tmp_path / "train.pickle"), str(tmp_path / f"{rank}.log")], timeout=120)
    reports = [json.loads(out.splitlines()[0]) for out in outputs]  # then gloo talks
    half = sharded_reader.BATCH // 2
    assert [r["rows"] for r in reports] == [[0, half], [half, 2 * half]]
    epoch = [b["x"] for b in loader.train_batches(ArraySource({"x": np.arange(len(train))}),
                                                  sharded_reader.BATCH, seed=sharded_reader.SEED,
                                                  epoch=sharded_reader.EPOCH)]
    for rank, report in enumerate(reports):
        assert report["shapes"] == [[half, 8, 8, 3]] * len(epoch)
        mine = [train.origin(int(i)) for batch in epoch for i in batch[rank * half:][:half]]
        assert (tmp_path / f"{rank}.log").read_text().splitlines() == mine
    decoded = [set((tmp_path / f"{rank}.log").read_text().splitlines()) for rank in (0, 1)]
    assert not decoded[0] & decoded[1]
    assert decoded[0] | decoded[1] == {train.origin(int(i)) for b in epoch for i in b}


def test_a_cap_on_a_split_in_class_order_keeps_every_class():
    """`train.max_examples` (what --smoke sets) samples the whole split, streamed or not."""
    from zoo.harness.inputs import _cap

    labels = np.repeat(np.arange(10), 50)  # stored by class, as mnist-sample's splits are
    in_memory = _cap({"label": labels}, 126)["label"]
    streamed = _cap(ArraySource({"label": labels}), 126)
    assert np.bincount(in_memory).min() >= 12 and len(in_memory) == 126
    assert [streamed[i]["label"] for i in range(126)] == in_memory.tolist()
    assert _cap({"label": labels}, 0)["label"] is labels


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


def _mapped_blocks() -> set[str]:
    """The shared-memory blocks (of batches from the workers) this process has mapped."""
    with open("/proc/self/maps") as f:
        return {line.split("/dev/shm/")[1].split()[0] for line in f if "/dev/shm/psm_" in line}


def test_memory_does_not_grow_with_the_number_of_images(tmp_path):
    """An epoch over 1,000 images (128x128 JPEGs, 49 MB decoded) grows the process tree by
    no more than one over 100: only file names are held, never decoded images. Its ~35
    batches come through the same few shared-memory blocks, all freed at the end."""
    growth, blocks, others = {}, set(), _mapped_blocks()  # others: of the module's fixture
    for count in (50, 500):  # per class; batches of 20: both epochs reach a steady state
        root = write_folder(tmp_path / str(count), count, size=(128, 128), suffix=".jpg")
        data = load_image_set(f"folder:{root}", 128, 3)
        inputs = Inputs(data.splits, seed=0, workers=1)
        try:
            before, peak = _tree_rss(), 0
            for _ in inputs.train(20, epoch=0):
                peak = max(peak, _tree_rss())
                blocks |= _mapped_blocks() - others
        finally:
            inputs.close()
        growth[count] = peak - before
        assert not blocks & (_mapped_blocks() | set(os.listdir("/dev/shm")))  # freed
    assert growth[500] < growth[50] + 20 * 2**20, growth  # holding images would add 44 MB
    assert len(blocks) <= 2 * (2 + 1), blocks  # each run: the batches read ahead, and one


def test_a_streamed_run_killed_mid_epoch_resumes_bitwise(tmp_path):
    """SIGKILL between checkpoints of a run whose points are a JSON-lines file read by a
    worker process, with broken lines skipped: resumed, it ends with the weights and
    history of an unbroken run, and both runs' run.json count each line left out once
    (not per epoch, nor again for the batches re-read after the resume)."""
    rng = np.random.default_rng(0)
    with open(tmp_path / "points.jsonl", "w") as f:
        for i, (x, label) in enumerate(zip(rng.normal(size=(1500, 2)), rng.integers(0, 2, 1500))):
            broken = i % 20 == 7  # 75 lines, about 3 in every batch: the one read ahead too
            f.write("{broken\n" if broken else json.dumps({"x": x.tolist(), "label": int(label)}) + "\n")
    args = ["run", "spirals", "--plugin", str(EXAMPLE_PLUGIN), "--data",
            f"jsonl:{tmp_path / 'points.jsonl'}", "--epochs", "2", "--checkpoint-every", "5",
            "--workers", "1", "--on-bad-example", "skip", "--quiet"]  # 16 steps an epoch
    zoo_here(*args, "--workdir", str(tmp_path / "clean"))
    (record,) = kill_and_resume(args, tmp_path / "killed", ["step"], random.Random(0))
    assert record["landed"] and record["step"] % 16, record
    clean, killed = latest_params(tmp_path / "clean"), latest_params(tmp_path / "killed")
    assert all(np.array_equal(clean[k], killed[k]) for k in clean)
    assert history(tmp_path / "clean") == history(tmp_path / "killed")
    bad = [json.loads((tmp_path / run / "run.json").read_text())["reading"]["bad_examples"]
           for run in ("clean", "killed")]
    assert bad[0] == bad[1] and bad[0]["count"] == 75, bad
    assert len(bad[0]["examples"]) == 75 and all("points.jsonl" in problem
                                                  for problem in bad[0]["examples"]), bad
